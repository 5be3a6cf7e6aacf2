"""The recorded scalars are declared once, in the core (cpp/include/lesde/record.hpp kScalars).

Python's metric names, the file formats that hold records and the docs' metric table follow
that table; these tests fail when one of them does not, and when the table changes without
the file format versions that go with it.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

import lesde
from lesde import _core
from lesde.sim import checkpoint, result, zarr_store

ROOT = Path(__file__).resolve().parents[1]

# The recorded scalars each file format version holds, in column order. The rule: a change of
# record.hpp kScalars (a name, the order, a new scalar) bumps FORMAT_VERSION of every format
# below and adds the new table here under the new version; old files are then refused with a
# message that names their version. Rows are never edited or removed.
SCALAR_TABLES = {
    "result": {1: ("loss", "accuracy", "clean_accuracy", "ncc_accuracy", "nc4")},
    "checkpoint": {1: ("loss", "accuracy", "clean_accuracy", "ncc_accuracy", "nc4")},
    "zarr": {1: ("loss", "accuracy", "clean_accuracy", "ncc_accuracy", "nc4")},
}
FORMATS = {"result": result, "checkpoint": checkpoint, "zarr": zarr_store}
# Metrics a Result carries besides the engine's scalars (lesde.sim.result.finish_metrics), and
# the docs' rows no run records (a sweep's fit).
DERIVED = {"nc1", "equinorm", "equiangularity", "etf_distance", "coherence"}
NOT_RECORDED = {"loss_tail_exponent"}
SMALL = dict(n_classes=3, n_per_class=20, t_end=0.05, progress=False)


def test_python_names_are_the_cores_table_in_column_order():
    table = _core.scalar_metrics()
    assert [m["index"] for m in table] == list(range(_core.NUM_SCALARS))
    assert result.SCALAR_METRICS == tuple(m["name"] for m in table)
    assert len(set(result.SCALAR_METRICS)) == len(result.SCALAR_METRICS)
    for m in table:
        assert m["pass"] in (1, 2), m
        assert m["needs"] in ("logits", "features"), m


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_a_table_change_bumps_the_format_version(fmt):
    version = FORMATS[fmt].FORMAT_VERSION
    history = SCALAR_TABLES[fmt]
    assert version in history and history[version] == result.SCALAR_METRICS, (
        f"the recorded scalars {result.SCALAR_METRICS} are not those of {fmt} format version "
        f"{version} ({history.get(version)}): bump FORMAT_VERSION in {FORMATS[fmt].__name__} "
        f"and add the new table to SCALAR_TABLES in this file"
    )
    assert max(history) == version, f"{fmt}: FORMAT_VERSION went back"


@pytest.mark.parametrize(
    "signal,extra",
    [
        ("cross_entropy", {}),  # logits: the features (p == K)
        ("linear", {}),  # logits: the features, read as logits
        ("linear", dict(dim=4)),  # p != K, no head: no logits to score
        ("cross_entropy", dict(dim=4, head=np.ones((3, 4)) / 4)),  # logits: H x
    ],
)
def test_what_each_scalar_needs_is_what_the_engine_records(signal, extra):
    res = lesde.simulate(signal=signal, **SMALL, **extra)
    cfg = res.config
    has_logits = cfg.head is not None or cfg.p == cfg.n_classes
    for m in _core.scalar_metrics():
        values = res.metrics[m["name"]]
        scored = m["needs"] == "features" or has_logits
        assert np.isfinite(values).all() == scored, (m, values)
        assert np.isnan(values).all() == (not scored), (m, values)


def _change_table(monkeypatch, module):
    """This lesde after a change of the table: its files are one version further on."""
    monkeypatch.setattr(module, "FORMAT_VERSION", module.FORMAT_VERSION + 1)


def test_result_of_another_table_is_refused_naming_its_version(tmp_path, monkeypatch):
    path = tmp_path / "r.npz"
    lesde.simulate(**SMALL).save(path)
    _change_table(monkeypatch, result)
    with pytest.raises(ValueError, match=r"format version 1 cannot be read by this lesde"):
        lesde.load(path)


def test_checkpoint_of_another_table_is_refused_naming_its_version(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    lesde.simulate(checkpoint=path, **SMALL)
    _change_table(monkeypatch, checkpoint)
    with pytest.raises(ValueError, match=r"format version 1 cannot be read by this lesde"):
        lesde.resume(path, progress=False)


@pytest.mark.skipif(importlib.util.find_spec("zarr") is None, reason="zarr is not installed")
def test_zarr_store_of_another_table_is_refused_naming_its_version(tmp_path, monkeypatch):
    path = tmp_path / "r.zarr"
    lesde.simulate(zarr_store=path, **SMALL)
    _change_table(monkeypatch, zarr_store)
    with pytest.raises(ValueError, match=r"format version 1 cannot be read by this lesde"):
        lesde.load_zarr(path)


def _model_metric_table() -> set[str]:
    text = (ROOT / "docs" / "model.md").read_text()
    section = text.split("## 4. Metrics", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.M))


@pytest.mark.skipif(not (ROOT / "docs").is_dir(), reason="no docs/ beside the tests (wheel check)")
def test_docs_metric_table_lists_what_a_run_records():
    recorded = set(lesde.simulate(**SMALL).metrics)
    assert set(result.SCALAR_METRICS) <= recorded
    assert recorded == set(result.SCALAR_METRICS) | DERIVED
    assert _model_metric_table() == recorded | NOT_RECORDED, "docs/model.md section 4"
    api = (ROOT / "docs" / "api.md").read_text()
    row = next(line for line in api.splitlines() if line.startswith("| `metrics` |"))
    listed = re.findall(r"`([a-z0-9_]+)`", row.split("|")[3])
    assert set(listed) == recorded, "docs/api.md, the row of Result.metrics"
    assert listed[: len(result.SCALAR_METRICS)] == list(result.SCALAR_METRICS)
