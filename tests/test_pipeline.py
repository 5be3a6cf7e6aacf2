"""Tests of lesde.pipeline (the paper's pipeline), grouped by what they protect.

- agreement with the paper: the paper's pipeline as its code runs it (``paper_reference``
  below: A, B from the NumPy transcription of its published estimators in
  tests/paper_code.py, Savitzky-Golay derivatives by explicit least-squares polynomials,
  forward Euler of the projected / linear LE-ODE whose step from record m uses the rate at
  table index m + 1, started from the averaged class means) agrees with
  ``paper_pipeline(conventions="paper", start=0)`` on the raw (uncentred) trial-averaged
  logits of a small real ensemble: A, B bit for bit, rates and replay to rounding
- the mapping: ``rate_offset=1`` is the paper's table index, ``rate_offset=0`` lesde's
  replay's; both against the reference
- lesde's deliberate departures: the L estimator is offset-invariant (adding a constant
  to a class's logits changes nothing; the paper's reading changes), and the default
  replay of an offset start only carries the offset along
- the stepped-input source (the paper's per-step class means)
- refusals: a window that is even, too short or longer than the trajectory, a
  non-uniform grid, a start with no class means, an estimator with no usable record
- the CLI route ``lesde nn paper``
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from paper_code import estimate_AB_I, estimate_AB_L, rows_of  # noqa: E402

from lesde.cli import main  # noqa: E402
from lesde.data import geometric_shapes  # noqa: E402
from lesde.nn.ensemble import train_ensemble  # noqa: E402
from lesde.nn.pipeline import (  # noqa: E402
    PAPER_WINDOW,
    aligned_start,
    average_class_means,
    paper_pipeline,
)
from lesde.nn.training_result import stepped_class_means  # noqa: E402

K = 3


# --------------------------------------------------------------------------------------
# the reference: the paper's pipeline, written out independently
# --------------------------------------------------------------------------------------


def savgol_derivative(values, dt, window, order):
    """d/dt by least-squares polynomials of ``order`` over ``window`` samples: centred in
    the interior; at each end the polynomial of the first / last window (scipy's
    mode="interp"), differentiated where the sample lies."""
    n, half = len(values), window // 2
    out = np.empty(n)
    for i in range(n):
        lo = min(max(i - half, 0), n - window)
        x = (np.arange(lo, lo + window) - i) * dt
        coef = np.polyfit(x, values[lo : lo + window], order)
        out[i] = coef[-2]  # derivative of the polynomial at x = 0
    return out


def paper_integrals(m, estimator):
    """A(t), B(t) as the paper's published code computes them from averaged logits m."""
    rows, y = rows_of(m)
    if estimator == "L":
        return estimate_AB_L(rows, K)[:2]
    return estimate_AB_I(rows, y, K)


def paper_replay(m0, alpha, beta, dt, estimator, rate_index_offset=1):
    """Forward Euler of the LE-ODE of the class means; the step from m uses rates[m + 1]."""
    T = len(alpha)
    v = np.eye(K) - 1.0 / K
    proj = [np.outer(v[k], v[k]) / (v[k] @ v[k]) for k in range(K)]
    y = np.empty((T, K, K))
    y[0] = m0
    for s in range(1, T):
        j = min(s - 1 + rate_index_offset, T - 1)
        g = [proj[k] @ y[s - 1, k] if estimator == "L" else y[s - 1, k] for k in range(K)]
        for c in range(K):
            push = alpha[j] * g[c] + beta[j] * sum(g[o] for o in range(K) if o != c)
            y[s, c] = y[s - 1, c] + dt * push / K
    return y


def paper_reference(m, times, estimator, window=PAPER_WINDOW, order=2, offset=1):
    dt = times[1] - times[0]
    A, B = paper_integrals(m, estimator)
    alpha = savgol_derivative(A, dt, window, order)
    beta = savgol_derivative(B, dt, window, order)
    return A, B, alpha, beta, paper_replay(m[0], alpha, beta, dt, estimator, offset)


# --------------------------------------------------------------------------------------
# a small real ensemble
# --------------------------------------------------------------------------------------


def linear_model(seed):
    """``Flatten + Linear(256 -> 3)`` in float64, seeded without touching torch's global
    random state: a real network that leaves its plateau within a few hundred steps on
    16 x 16 shapes, so its class means come to point at their labels (LeNet needs
    thousands of steps on 32 x 32 images)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16 * 16, K))
    return model.to(torch.float64)


@pytest.fixture(scope="module")
def ensemble():
    """Six linear networks on 30 shapes of 16 x 16: 240 one-sample SGD steps, a record
    every 4, trained in this process."""
    data = geometric_shapes(10, size=16, seed=0)
    return train_ensemble(data, trials=6, lr=0.05, steps=240, record_every=4, workers=1,
                          seed=2, model=linear_model, progress=False)  # fmt: skip


def relative(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("estimator", ["L", "I"])
def test_paper_conventions_reproduce_the_paper_pipeline(ensemble, estimator):
    """Same raw averaged logits (no centring: the paper's code was fed the networks'
    logits as they are), same numbers: A, B bit for bit. Measured (relative max-norm):
    rates 2e-14 to 5e-14 (scipy's filter coefficients against np.polyfit), replays 2e-13;
    the bounds leave a factor of at least 50."""
    times, means = average_class_means(ensemble)
    assert np.min(np.abs(means.sum(axis=2))) > 0.01, "the logits sum to zero: not raw"
    run = paper_pipeline(ensemble, estimator=estimator, conventions="paper", start=0)
    A, B, alpha, beta, replayed = paper_reference(means, times, estimator)
    assert run.times.size == times.size == 61, f"{run.times.size} records"
    np.testing.assert_array_equal(run.class_means, means, err_msg="the averaged class means")
    np.testing.assert_allclose(
        average_class_means(ensemble)[1], np.mean(ensemble.class_means, axis=0), rtol=1e-14
    )
    np.testing.assert_array_equal(run.A_hat, A, err_msg="A_hat, bit for bit")
    np.testing.assert_array_equal(run.B_hat, B, err_msg="B_hat, bit for bit")
    assert relative(run.alpha_hat, alpha) < 1e-11, f"alpha: {relative(run.alpha_hat, alpha)}"
    assert relative(run.beta_hat, beta) < 1e-11, f"beta: {relative(run.beta_hat, beta)}"
    assert relative(run.replayed, replayed) < 1e-11, f"replay: {relative(run.replayed, replayed)}"
    err = np.max(np.abs(run.replayed - means), axis=(1, 2)) / np.max(np.abs(means), axis=(1, 2))
    np.testing.assert_allclose(run.error, err, rtol=1e-12, err_msg="the error per record")


def test_rate_offset_is_the_table_index(ensemble):
    """rate_offset=1 reads the rate of record m + 1 for the step from m (the paper's
    integrator); rate_offset=0 reads record m (lesde.analysis.estimate.replay). The two differ by
    O(dt * d(alpha)/dt), far above rounding here."""
    times, means = average_class_means(ensemble)
    _, _, alpha, beta, _ = paper_reference(means, times, "L")
    dt = times[1] - times[0]
    for offset in (1, 0):
        run = paper_pipeline(ensemble, conventions="paper", start=0, rate_offset=offset)
        ref = paper_replay(means[0], alpha, beta, dt, "L", rate_index_offset=offset)
        assert relative(run.replayed, ref) < 1e-11, (
            f"offset {offset}: {relative(run.replayed, ref)}"
        )
    one = paper_pipeline(ensemble, conventions="paper", start=0, rate_offset=1).replayed
    zero = paper_pipeline(ensemble, conventions="paper", start=0, rate_offset=0).replayed
    assert relative(one, zero) > 1e-6, "the offset changed nothing"
    assert paper_pipeline(ensemble, start=0, conventions="paper").settings["rate_offset"] == 1


def test_lesde_L_estimator_is_offset_invariant(ensemble):
    """Softmax ignores a constant added to a class's logits; lesde's L estimator does too,
    the paper's reading (logits summing to zero) does not."""
    times, means = average_class_means(ensemble)
    shift = np.array([0.7, -0.4, 1.3])[None, :, None]  # per class, every logit
    start = aligned_start(means)
    raw = paper_pipeline(means, times=times, start=start)
    moved = paper_pipeline(means + shift, times=times, start=start)
    np.testing.assert_allclose(moved.A_hat, raw.A_hat, rtol=1e-10, atol=1e-12, err_msg="A")
    np.testing.assert_allclose(moved.alpha_hat, raw.alpha_hat, rtol=1e-8, atol=1e-10,
                               err_msg="alpha")  # fmt: skip
    # the projected LE-ODE never moves the common direction: the offset rides along
    carried = np.broadcast_to(shift, raw.replayed.shape)
    np.testing.assert_allclose(moved.replayed - raw.replayed, carried, atol=1e-9,
                               err_msg="replay of the offset start")  # fmt: skip
    paper_raw = paper_pipeline(means, times=times, start=start, conventions="paper")
    paper_moved = paper_pipeline(means + shift, times=times, start=start, conventions="paper")
    assert relative(paper_moved.A_hat, paper_raw.A_hat) > 1e-3, "paper reading unchanged"


def test_default_route_departs_only_where_documented(ensemble):
    """The defaults: L, window 21, polyorder 2, rate_offset 1, records, lesde conventions,
    start where the class means point at their labels."""
    run = paper_pipeline(ensemble)
    s = run.settings
    assert (s["estimator"], s["window"], s["polyorder"], s["rate_offset"]) == ("L", 21, 2, 1)
    assert (s["data"], s["conventions"], s["start_rule"]) == ("records", "lesde", "aligned")
    _, means = average_class_means(ensemble)
    assert s["start"] == aligned_start(means) > 0, s
    assert s["trials"] == 6 and np.isfinite(run.mean_error), f"{run!r}"
    assert run.replayed.shape == run.class_means.shape == (run.times.size, K, K)


def test_stepped_source_is_the_paper_average(ensemble):
    """data="stepped": per step and class, the mean over trials of the stepped inputs'
    logits (NaN where no trial stepped that class)."""
    means = stepped_class_means(ensemble)
    R, S = ensemble.stepped_indices.shape
    assert means.shape == (S, K, K)
    for step in (0, 17, S - 1):
        for k in range(K):
            rows = [r for r in range(R)
                    if ensemble.classes[ensemble.stepped_indices[r, step]] == k]  # fmt: skip
            if rows:
                np.testing.assert_allclose(
                    means[step, k], ensemble.stepped_logits[rows, step].astype(float).mean(0),
                    rtol=1e-12, err_msg=f"step {step}, class {k}",
                )  # fmt: skip
            else:
                assert np.isnan(means[step, k]).all(), f"step {step}, class {k}: no sample"
    times, averaged = average_class_means(ensemble, data="stepped")
    np.testing.assert_allclose(times, np.arange(S) * 0.05, err_msg="stepped times")
    np.testing.assert_array_equal(averaged, means)


@pytest.mark.parametrize(
    "kw, words",
    [
        (dict(window=20), "window must be odd"),
        (dict(window=1), "window must be odd and above polyorder"),
        (dict(window=63, start=0), "window = 63 is longer than the trajectory .61 records"),
        (dict(window=21, start=50), "window = 21 is longer than the trajectory .11 records"),
        (dict(start=59), "needs 3 records"),
        (dict(estimator="X"), "estimator"),
        (dict(data="all"), "data"),
        (dict(conventions="mine"), "conventions"),
        (dict(rate_offset=2), "rate_offset"),
    ],
)
def test_bad_input_is_one_line(ensemble, kw, words):
    with pytest.raises(ValueError, match=words) as err:
        paper_pipeline(ensemble, **kw)
    assert "\n" not in str(err.value), str(err.value)


def test_a_reference_record_of_the_wrong_sign_is_refused():
    """Class means that flip their label pattern after the reference record: every growth
    ratio is negative, lesde's estimators skip them all, and the message says why."""
    t = np.arange(30) * 0.1
    v = np.eye(K) - 1.0 / K + 0.05 * np.arange(K)[:, None]
    sign = np.where(t == 0, 1.0, -1.0)[:, None, None]
    with pytest.raises(ValueError, match="no usable record from start = 0") as err:
        paper_pipeline(sign * np.exp(t)[:, None, None] * v, times=t, start=0)
    assert "\n" not in str(err.value) and 'start="aligned"' in str(err.value)


def test_uniform_grid_and_a_start_with_means_are_required(ensemble):
    times, means = average_class_means(ensemble)
    bent = times.copy()
    bent[len(bent) // 2] += 0.01
    with pytest.raises(ValueError, match="uniform record grid"):
        paper_pipeline(means, times=bent, start=0, conventions="paper")
    holes = means.copy()
    holes[0, 1] = np.nan
    with pytest.raises(ValueError, match="no class means to replay from at record 0"):
        paper_pipeline(holes, times=times, start=0, conventions="paper")
    with pytest.raises(ValueError, match="never point at their labels"):
        aligned_start(np.zeros((5, K, K)) + np.array([0.0, 1.0, 0.0]))


def test_a_last_record_off_the_grid_is_left_out(ensemble):
    """Training whose steps are not a multiple of record_every records its final state
    off the grid (`lesde nn train --steps 1500` with the default record_every 7 did, and
    `lesde nn paper` then refused the ensemble): the replay leaves that record out."""
    times, means = average_class_means(ensemble)
    on_grid = paper_pipeline(means, times=times, start=0, conventions="paper")
    late = np.r_[times, times[-1] + 0.4 * (times[1] - times[0])]
    extra = np.concatenate([means, means[-1:] * 1.01])
    run = paper_pipeline(extra, times=late, start=0, conventions="paper")
    np.testing.assert_array_equal(run.times, on_grid.times, err_msg="the off-grid record stays")
    np.testing.assert_array_equal(run.replayed, on_grid.replayed, err_msg="the replay changed")


# --------------------------------------------------------------------------------------
# the CLI route
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-ensemble")
    assert main(["nn", "train", str(path), "--trials", "3", "--steps", "160", "--lr", "0.05",
                 "--record-every", "4", "--n-per-class", "6", "--workers", "1",
                 "--quiet"]) == 0  # fmt: skip
    return path


def test_cli_paper_prints_the_pipeline(folder, capsys):
    args = ["--json", "--estimator", "I", "--start", "0", "--conventions", "paper"]
    assert main(["nn", "paper", str(folder), *args]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["estimator"] == "I" and out["trials"] == 3 and out["window"] == 21, out
    assert out["rate_offset"] == 1 and out["records"] == 41 and out["start"] == 0, out
    assert out["conventions"] == "paper" and out["folder"] == str(folder), out
    assert out["mean_error"] is None or out["mean_error"] >= 0, out


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--trials", "5"], "5 trials asked for, 3 stored"),
        (["--window", "401", "--start", "0"], "window = 401 is longer than the trajectory"),
        (["--window", "20"], "window must be odd"),
        (["--start", "first"], "--start must be 'aligned' or a record index"),
    ],
)
def test_cli_paper_refusals_are_one_line(folder, capsys, extra, words):
    assert main(["nn", "paper", str(folder), *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1, err


def test_cli_train_refuses_other_settings(folder, capsys):
    args = ["--trials", "4", "--steps", "160", "--lr", "0.1", "--record-every", "4"]
    args += ["--n-per-class", "6", "--workers", "1", "--quiet"]
    code = main(["nn", "train", str(folder), *args])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert "lr = 0.05; this call asks for 0.1" in err and len(err.splitlines()) == 1, err
    code = main(["nn", "train", str(folder), "--trials", "0", "--quiet"])
    assert code == 1 and "trials" in capsys.readouterr().err


def test_cli_nn_needs_an_action(capsys):
    assert main(["nn"]) == 1
    err = capsys.readouterr().err.strip()
    assert "lesde nn needs an action: train or paper" in err and len(err.splitlines()) == 1, err
