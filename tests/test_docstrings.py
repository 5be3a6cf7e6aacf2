"""Every example in a docstring runs and prints what it says (the API's promises to readers)."""

import doctest
import importlib
import pkgutil

import pytest

import lesde

# Modules that need an optional extra: skipped with the reason where it is not installed.
# (matplotlib and pandas are core dependencies: lesde.plot is never skipped.)
NEEDS = {
    "lesde.nn.network": "torch",
    "lesde.nn": "torch",
    "lesde.nn.training": "torch",
    "lesde.sim.zarr_store": "zarr",
}
# Every module of the package, subpackages such as lesde.cli included.
MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(lesde.__path__, "lesde.")
    if not any(part.startswith("_") for part in m.name.split(".")[1:])  # _core, __main__
)


def test_modules_found():
    expected = {"lesde.nn", "lesde.data", "lesde.analysis.estimate", "lesde.metrics", "lesde.plot"}
    expected |= {"lesde.cli", "lesde.cli.common", "lesde.cli.run", "lesde.cli.sweep"}
    assert expected <= set(MODULES), MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch):
    if name in NEEDS:
        pytest.importorskip(NEEDS[name])
    monkeypatch.setenv("MPLBACKEND", "Agg")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no docstring example at all"
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} docstring examples of {name} failed (output above)"
    )
