"""Every example runs with --quick, writes its figures and prints its numbers."""

import subprocess
import sys
from pathlib import Path

import pytest
from processes import child_env

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

CASES = {
    "phase_transition": (["phase_transition.png"], ["fraction separable", "alpha > beta"]),
    "label_noise": (["label_noise.png"], ["clean accuracy crosses chance"]),
    "neural_collapse": (
        ["neural_collapse_metrics.png", "neural_collapse_class_means.png"],
        ["etf_distance", "cross_entropy", "projected"],
    ),
}
OPTIONAL = {"estimate_and_replay": (["estimate_and_replay.png"], [])}
# Examples that need an optional extra: skipped (with the reason) where it is not installed.
NEEDS = {"real_network": "torch", "real_network_study": "torch", "matrix_imitation": "torch"}
CASES["real_network"] = (
    [
        "real_network_training.png",
        "real_network_impact.png",
        "real_network_estimates.png",
        "real_network_replay.png",
        "real_network_ce_replay.png",
        "real_network_label_noise.png",
    ],
    ["directly measured impact", "I estimator", "L estimator", "label corruption"],
)
CASES["real_network_study"] = (
    [
        "real_network_replay_vs_trials.png",
        "real_network_ensemble_replay.png",
        "real_network_impact_bands.png",
        "real_network_prediction.png",
        "real_network_label_noise_seeds.png",
    ],
    ["replay error L, records", "median [10%, 90%] over trials", "observe 30%", "p_err 0.667"],
)
CASES["matrix_imitation"] = (
    [
        "matrix_replay_shapes.png",
        "matrix_replay_digits.png",
        "matrix_replay_errors.png",
        "matrix_prediction.png",
    ],
    [
        "the paper's code, start 0",
        "replay error median [min, max]",
        "rate forms",
        "observe 30%",
        "K = 10",
        "written for K = 3 classes only",
    ],
)


def test_every_example_is_tested():
    found = {p.stem for p in EXAMPLES.glob("*.py")}
    assert found <= set(CASES) | set(OPTIONAL), f"untested examples: {found - set(CASES)}"


@pytest.mark.parametrize("name", [*CASES, *OPTIONAL])
def test_example_quick(name, tmp_path):
    script = EXAMPLES / f"{name}.py"
    if name in OPTIONAL and not script.exists():
        pytest.skip(f"{script.name} is not written")
    if name in NEEDS:
        pytest.importorskip(NEEDS[name])
    figures, phrases = {**CASES, **OPTIONAL}[name]
    proc = subprocess.run(  # no --out: the default folder, never the current folder itself
        [sys.executable, str(script), "--quick"],
        capture_output=True,
        text=True,
        env=child_env(MPLBACKEND="Agg"),
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "lesde-examples" / name
    assert [p.name for p in tmp_path.iterdir()] == ["lesde-examples"], list(tmp_path.iterdir())
    for fig in figures:
        path = out / fig
        assert path.exists() and path.stat().st_size > 10_000, f"{fig} missing or empty"
        assert path.read_bytes()[:4] == b"\x89PNG"
    for phrase in phrases:
        assert phrase in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("name", list(CASES))
def test_example_has_docstring_and_quick_flag(name):
    text = (EXAMPLES / f"{name}.py").read_text()
    assert text.startswith('"""') and "--quick" in text and "--out" in text
