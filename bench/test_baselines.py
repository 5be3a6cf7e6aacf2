"""Correctness of the benchmark backends (lesde.bench) against a plain NumPy float64
reference, on every dtype and thread count, and the harness's rows.

Run: python -m pytest bench/test_baselines.py -q
torch / jax cases skip when the package is missing. JAX runs in this process with
whatever XLA_FLAGS are set (thread flags only matter for timing).
"""

import math

import numpy as np
import pytest

from lesde.bench import bandwidth, baselines, harness, problem

AVAIL = baselines.available_backends()


def _param_backends():
    out = []
    for b in baselines.BACKENDS:
        if b == "lesde":
            continue  # test_lesde_matches_the_reference
        ok, why = AVAIL[b]
        marks = [pytest.mark.skipif(not ok, reason=why)]
        if b in ("torch", "jax"):
            marks.append(getattr(pytest.mark, f"needs_{b}"))
        out.append(pytest.param(b, marks=marks, id=b))
    return out


BACKEND_PARAMS = _param_backends()


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("signal", problem.SIGNALS)
@pytest.mark.parametrize("dtype", problem.DTYPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_matches_reference_sigma0(backend, signal, dtype, threads):
    if backend == "numpy" and threads == 2:
        pytest.skip("numpy backend is single-threaded")
    err, tol = baselines.check_against_reference(backend, signal, dtype, threads=threads, n_steps=5)
    assert err < tol, (backend, signal, dtype, err)


def test_reference_is_sensitive():
    """The check must fail for a wrong drift (E transposed), else it proves nothing."""
    rng = np.random.default_rng(0)
    for signal, p in (("linear", 3), ("cross_entropy", 4)):
        E = rng.uniform(-0.5, 2.0, (4, 4))
        prob = problem.make_problem(
            signal, 500, 4, p, E=E, dt=0.5, sigma=0.0, x0_scale=2.0, counts=[50, 150, 100, 200]
        )
        ref = problem.reference_run(prob, 5)
        st = baselines.make_stepper("numpy", problem=prob)
        st.E = st.E.T.copy()
        st.run(5)
        assert np.abs(st.state() - ref).max() / np.abs(ref).max() > 1e-3


def test_reference_linear_closed_form():
    """Class means under the linear signal follow dm/dt = (E o pi) m; with small dt the
    Euler reference must track the exact exponential (docs/model.md section 2(c))."""
    from scipy.linalg import expm

    K, p, dt, n = 3, 2, 1e-3, 400
    E = problem.default_impact(K, 2.0, 0.5)
    prob = problem.make_problem("linear", 300, K, p, E=E, dt=dt, sigma=0.0, seed=1)
    X = problem.reference_run(prob, n)
    m0 = np.stack([prob.X0[prob.c == k].mean(0) for k in range(K)])
    m = np.stack([X[prob.c == k].mean(0) for k in range(K)])
    A = E * prob.pi[None, :]
    exact = expm(A * dt * n) @ m0
    assert np.allclose(m, exact, rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("dtype", problem.DTYPES)
def test_noise_statistics(backend, dtype):
    """E = 0: one step is pure noise, increments must be N(0, sigma^2 dt)."""
    K, p, N = 3, 4, 30_000
    prob = problem.make_problem("linear", N, K, p, E=np.zeros((K, K)), dt=0.25, sigma=2.0)
    st = baselines.make_stepper(backend, problem=prob, dtype=dtype, threads=2)
    st.run(1)
    d = (st.state() - prob.X0.astype(dtype)) / (prob.sigma * math.sqrt(prob.dt))
    assert abs(d.mean()) < 5 / math.sqrt(d.size)
    assert abs(d.var() - 1) < 5 * math.sqrt(2 / d.size)
    # rows are not copies of each other (independent streams per thread / per sample)
    assert np.mean(d[: N // 2] == d[N // 2 :]) < 1e-3


def test_stepper_interface_and_unavailable():
    st = baselines.make_stepper("numpy", "cross_entropy", 1000, 5, 5, "float32")
    st.run(2)
    assert st.state().shape == (1000, 5) and st.state().dtype == np.float64
    with pytest.raises(ValueError):
        baselines.make_stepper("numpy", "cross_entropy", 100, 5, 4)
    with pytest.raises(ValueError):
        baselines.make_stepper("nope", "linear", 100, 5, 4)


def test_harness_rows_json():
    import json

    rows = harness.run_baselines(
        [(2000, 4, 3)],
        backends=("numpy", "lesde"),
        dtypes=("float64",),
        signal="linear",
        n_steps=2,
        repeats=2,
        subprocess_isolation=False,
    )
    for row in rows:  # lesde is part of the package: it is always timed
        assert row["status"] == "ok" and row["seconds_per_step"] > 0, row
        assert row["check_error"] < row["check_tolerance"], row
        for k in harness.ROW_KEYS:
            assert k in row
        json.dumps(row)
    numpy_row, lesde_row = rows
    assert numpy_row["speedup_vs_numpy"] == 1.0
    expected = numpy_row["seconds_per_step"] / lesde_row["seconds_per_step"]
    assert lesde_row["speedup_vs_numpy"] == pytest.approx(expected)


def test_bandwidth_small():
    r = bandwidth.measure_bandwidth(8e6, threads=(1, 2), repeats=1, block=4096)
    for th in ("1", "2"):
        assert r["results"][th]["copy_GBps"] > 0


@pytest.mark.parametrize("signal", ["linear", "cross_entropy"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_lesde_matches_the_reference(signal, dtype):
    """lesde's engine on the baselines' problem (sigma = 0) equals the float64 reference."""
    rng = np.random.default_rng(3)
    K, N = 4, 997
    p = K if signal == "cross_entropy" else 3
    counts = np.array([300, 200, 250, 247])
    E = rng.uniform(-0.5, 2.0, (K, K))
    c = np.repeat(np.arange(K), counts)
    y = c.copy()
    flip = rng.random(N) < 0.2
    y[flip] = rng.integers(0, K, flip.sum())
    prob = problem.make_problem(
        signal, N, K, p, counts=counts, E=E, dt=0.5, sigma=0.0, seed=3, y=y, x0_scale=2.0
    )
    ref = problem.reference_run(prob, 5)
    st = baselines.LesdeStepper(prob, dtype, threads=1)
    st.run(5)
    err = np.abs(st.state() - ref).max() / np.abs(ref).max()
    assert err < (1e-10 if dtype == "float64" else 1e-4), f"lesde differs from reference: {err}"
