"""The model registry (lesde.sim.model): the signal, noise and scheme names come from the
compiled core, everything Python knows per signal lives in one table, and a core name
without an entry (or an entry without a core name) fails when lesde is imported, not mid-run."""

import subprocess
import sys
import textwrap

import pytest
from processes import child_env

import lesde
from lesde import _core
from lesde.cli import common
from lesde.sim import config, model, result


def test_names_are_the_cores():
    assert model.SIGNALS == tuple(_core.Signal.__members__)
    assert model.NOISES == tuple(k["name"] for k in _core.noise_kinds())
    assert model.SCHEMES == tuple(s["name"] for s in _core.schemes())
    assert (config.SIGNALS, config.NOISES, config.SCHEMES) == (
        model.SIGNALS,
        model.NOISES,
        model.SCHEMES,
    )


def test_every_table_per_signal_is_read_from_the_one_table():
    assert set(model.SIGNAL_INFO) == set(model.SIGNALS)
    for name, info in model.SIGNAL_INFO.items():
        assert result.HEADLINE_METRICS[name] == info.headline
        assert common.SIGNAL_READING[name] == info.reading


@pytest.mark.parametrize(
    ("core", "known", "words"),
    [
        (["linear", "cubic"], ["linear"], "the core's signal 'cubic' has no entry in T"),
        (["linear"], ["linear", "cubic"], "T has an entry for signal 'cubic', which the compiled"),
        (["a", "b", "c"], ["a"], "signal 'b', 'c' has no entry"),
    ],
)
def test_check_registry_names_what_is_missing(core, known, words):
    with pytest.raises(ImportError, match=words):
        model.check_registry("signal", core, known, "T")


def _import_with(patch: str) -> subprocess.CompletedProcess:
    """Import lesde.sim.model afresh in a child whose core was changed by ``patch``."""
    code = textwrap.dedent(f"""
        import importlib, types
        import lesde
        from lesde import _core
        from lesde.sim import model
        {patch}
        importlib.reload(model)
    """)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), timeout=120
    )


def test_a_core_signal_without_an_entry_fails_at_import():
    fake = "{**_core.Signal.__members__, 'cubic': 3}"
    done = _import_with(f"_core.Signal = types.SimpleNamespace(__members__={fake})")
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: the core's signal 'cubic' has no entry in SIGNAL_INFO")


def test_a_core_without_a_signal_of_the_table_fails_at_import():
    fewer = "{k: v for k, v in _core.Signal.__members__.items() if k != 'projected'}"
    done = _import_with(f"_core.Signal = types.SimpleNamespace(__members__={fewer})")
    assert done.returncode != 0
    assert "SIGNAL_INFO has an entry for signal 'projected'" in done.stderr, done.stderr


def test_the_unpatched_registry_imports():
    """The control for the two tests above: the same child without a patch imports."""
    done = _import_with("pass")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("signal", "dim", "head", "words"),
    [
        ("projected", 3, None, r'signal="projected" needs dim == n_classes \(2\), got dim=3'),
        ("projected", 2, [[1.0, 0.0], [0.0, 1.0]], 'head is only used with signal="cross_entropy"'),
        ("cross_entropy", 3, None, r"needs a head matrix of shape \(2, 3\)"),
    ],
)
def test_the_dimension_rule_comes_from_the_table(signal, dim, head, words):
    with pytest.raises(ValueError, match=words):
        lesde.Config(n_classes=2, n_per_class=2, dim=dim, signal=signal, head=head)
    lesde.Config(n_classes=2, n_per_class=2, dim=3, signal="linear")  # any dim
