"""Every public name of the package can be reached as it is documented.

A function exported under the name of a submodule used to hide that module:
``import lesde.sweep as sw; sw.phase_diagram`` failed, since ``import a.b as c`` takes the
attribute ``b`` of ``a`` (the function), not the module. Now every attribute that a package
of lesde holds under a submodule's name is that module (``lesde.sweep`` and
``lesde.simulate`` are callable modules), and every name of every ``__all__`` exists.
"""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
import sys
import types

import pytest

import lesde

NEEDS = {"lesde.nn.network": "torch", "lesde.nn": "torch", "lesde.nn.training": "torch"}
NEEDS["lesde.sim.zarr_store"] = "zarr"


def _public(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split(".")[1:])


MODULES = sorted(m.name for m in pkgutil.walk_packages(lesde.__path__, "lesde.") if _public(m.name))


def _import(name: str) -> types.ModuleType:
    if name in NEEDS:
        pytest.importorskip(NEEDS[name])
    return importlib.import_module(name)


@pytest.mark.parametrize("name", MODULES)
def test_import_as_gives_the_module(name):
    """``import lesde.x.y as m`` is the module lesde/x/y.py, whatever its package exports."""
    module = _import(name)
    namespace: dict = {}
    exec(f"import {name} as m", namespace)
    assert namespace["m"] is module, f"import {name} as m gives {namespace['m']!r}"
    parent, _, leaf = name.rpartition(".")
    held = getattr(sys.modules[parent], leaf)
    assert held is module, f"{parent}.{leaf} is {held!r}, which hides the module {name}"


@pytest.mark.parametrize("name", ["lesde", *MODULES])
def test_every_name_of_all_exists(name):
    module = _import(name)
    missing = [n for n in getattr(module, "__all__", ()) if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names {missing}, which it does not hold"


def test_module_and_function_spellings_both_work():
    """The documented calls (``lesde.simulate(...)``, ``lesde.sweep(base, grid)``) and the
    documented module spellings (``import lesde.sweep as sw; sw.phase_diagram``)."""
    import lesde.sim.simulate as sm
    import lesde.sweep as sw

    assert sw.phase_diagram is lesde.phase_diagram and sm.NonFiniteError is lesde.NonFiniteError
    res = lesde.simulate(n_classes=2, n_per_class=5, t_end=0.1, progress=False, seed=3)
    assert res.ok and res.times.size == 11
    base = lesde.Config(n_classes=2, n_per_class=5, signal="linear", t_end=0.1)
    table = lesde.sweep(base, {"alpha": [0.5, 1.0]}, progress=False).table
    assert table["status"].tolist() == ["ok", "ok"]
    from lesde import simulate, sweep

    assert sweep is sw and simulate is sm
    for module, function in ((sw, sw.sweep), (sm, sm.simulate)):
        assert inspect.signature(module) == inspect.signature(function)
        assert pickle.loads(pickle.dumps(module)) is module  # pool.submit(lesde.simulate, ...)
