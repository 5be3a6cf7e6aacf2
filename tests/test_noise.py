"""The noise kinds (Config.noise): the law of the increments, against closed forms.

Pure diffusion (linear signal, alpha = beta = 0, x(0) = 0) isolates the noise: after n steps
of size dt every coordinate is S = sigma sqrt(dt) (xi_1 + ... + xi_n), and its moments have
closed forms for each law of xi (t = n dt, sigma = 1):

==============  ==========  ===============  =====================
moment          Gaussian    two-point +-1    three-point
==============  ==========  ===============  =====================
E S^2           t           t                t
E S^4           3 t^2       3 t^2 - 2 t dt   3 t^2
E S^6           15 t^3      ...              15 t^3 - 6 t dt^2
==============  ==========  ===============  =====================

so the two-point increments get the fourth moment wrong by O(dt) (weak order 1) and the
three-point ones match it exactly and the sixth to O(dt^2) (weak order 2): what
``lesde.sim.engine.scheme_orders`` declares. Each bound is 5 standard errors of the sample
moment (about 6e-7 false-positive rate per check for a Gaussian statistic); the seeds are
fixed, so the outcome is reproducible.
"""

import numpy as np
import pytest
from processes import child_env
from scipy import stats

import lesde
from lesde import _core
from lesde.sim.engine import scheme_orders

Z = 5.0
# Moments of the standard normal: E z^2k = (2k - 1)!!
NORMAL = {2: 1.0, 4: 3.0, 6: 15.0, 8: 105.0, 12: 10395.0}


def diffuse(noise, dt, t_end=1.0, n=250_000, p=4, scheme="euler_maruyama"):
    """Every coordinate of every sample after pure diffusion to t_end, flattened."""
    res = lesde.simulate(
        n_classes=2,
        n_per_class=n // 2,
        dim=p,
        signal="linear",
        alpha=0.0,
        beta=0.0,
        sigma=1.0,
        noise=noise,
        scheme=scheme,
        init_scale=0.0,
        dt=dt,
        t_end=t_end,
        record_every=int(round(t_end / dt)),
        seed=4,
        progress=False,
    )
    return res.features[0].ravel()


def expected_moment(noise, k, t, dt):
    """E S^k of the discrete law (closed forms of the module docstring)."""
    if noise == "gaussian" or k == 2:
        return NORMAL[k] * t ** (k // 2)
    if noise == "two_point" and k == 4:
        return 3 * t**2 - 2 * t * dt
    if noise == "three_point" and k == 4:
        return 3 * t**2
    if noise == "three_point" and k == 6:
        return 15 * t**3 - 6 * t * dt**2
    raise ValueError((noise, k))


def standard_error(k, t, size):
    """Of the sample k-th moment of N(0, t) values (a bound for the discrete laws too)."""
    return np.sqrt(NORMAL[2 * k] - NORMAL[k] ** 2) * t ** (k / 2) / np.sqrt(size)


CHECKS = {"gaussian": (2, 4, 6), "two_point": (2, 4), "three_point": (2, 4, 6)}


@pytest.mark.parametrize("noise", list(CHECKS))
@pytest.mark.parametrize("dt", [0.5, 0.125])
def test_moments_of_the_summed_increments_match_their_closed_forms(noise, dt):
    S = diffuse(noise, dt)
    for k in CHECKS[noise]:
        got = float(np.mean(S**k))
        want = expected_moment(noise, k, 1.0, dt)
        bound = Z * standard_error(k, 1.0, S.size)
        assert abs(got - want) < bound, (
            f"{noise}, dt={dt}: E S^{k} = {got:.4f}, closed form {want:.4f} (5 SE = {bound:.4f})"
        )
    third = float(np.mean(S**3))  # odd moments vanish for every law (symmetric)
    assert abs(third) < Z * np.sqrt(NORMAL[6] / S.size), f"{noise}, dt={dt}: E S^3 = {third:.4f}"


def test_two_point_gets_the_fourth_moment_wrong_at_order_dt():
    # The bias -2 t dt is 20 standard errors at dt = 0.5: a wrong law could not pass this.
    S = diffuse("two_point", 0.5)
    se = standard_error(4, 1.0, S.size)
    assert abs(np.mean(S**4) - 3.0) > 10 * se, "two-point increments look Gaussian at dt = 0.5?"
    assert scheme_orders("euler_maruyama", "two_point")["weak"] == 1.0
    assert scheme_orders("heun", "two_point")["weak"] == 1.0


def test_three_point_matches_moments_to_the_fifth_and_is_declared_order_two():
    assert scheme_orders("heun", "three_point")["weak"] == 2.0
    assert scheme_orders("euler_maruyama", "three_point")["weak"] == 1.0  # the scheme limits it
    xi = _core.increments(_core.NoiseKind.three_point, 7, 0, 0, 0, 1_000_000)
    values, counts = np.unique(xi, return_counts=True)
    np.testing.assert_allclose(values, [-np.sqrt(3), 0.0, np.sqrt(3)], rtol=1e-15)
    # Probabilities 1/6, 2/3, 1/6: a chi-square test at a 1e-6 false-positive rate.
    expected = np.array([1 / 6, 2 / 3, 1 / 6]) * xi.size
    assert stats.chisquare(counts, expected).pvalue > 1e-6, f"outcome counts {counts}"


def test_two_point_is_fair_and_independent_bit_by_bit():
    xi = _core.increments(_core.NoiseKind.two_point, 11, 0, 3, 0, 2_000_000)
    assert set(np.unique(xi)) == {-1.0, 1.0}
    n = xi.size
    assert abs(xi.mean()) < Z / np.sqrt(n), f"mean {xi.mean()}: the bits are not fair"
    lag1 = np.mean(xi[1:] * xi[:-1])  # consecutive bits of one word
    lag32 = np.mean(xi[32:] * xi[:-32])  # the same bit of consecutive words
    lag128 = np.mean(xi[128:] * xi[:-128])  # the same bit of consecutive blocks
    for name, value in (("1", lag1), ("32", lag32), ("128", lag128)):
        assert abs(value) < Z / np.sqrt(n), f"lag-{name} correlation {value}"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("noise", ["gaussian", "two_point", "three_point"])
def test_every_path_draws_the_same_increments(noise, dtype):
    # The CPU fill on every instruction set this CPU has (whole rounds, partial rounds of
    # a few blocks, a tile of 128 samples x p = 10) and the function a GPU thread calls.
    kind = getattr(_core.NoiseKind, noise)
    cuts = [(0, 1000), (5, 333), (123_457, 4099), (1280, 1280), (7, 130), (2**32 * 128 - 300, 900)]
    for first, count in cuts:
        scalar = _core.increments(kind, 3, 2, 9, first, count, "scalar", dtype)
        for path in ("simd", *_core.fill_paths()):
            np.testing.assert_array_equal(
                _core.increments(kind, 3, 2, 9, first, count, path, dtype),
                scalar,
                err_msg=f"{noise}: the {path} fill differs from the scalar increments",
            )


def test_zero_sigma_draws_no_noise_and_gives_the_noiseless_run():
    # sigma = 0: the sweep draws nothing, so the noise kind cannot matter.
    runs = [
        lesde.simulate(
            n_classes=3, n_per_class=200, sigma=0.0, noise=noise, steps=20, progress=False
        )
        for noise in ("gaussian", "two_point", "three_point")
    ]
    for other in runs[1:]:
        np.testing.assert_array_equal(runs[0].features, other.features)


def test_sgd_refuses_the_weak_noises():
    with pytest.raises(ValueError, match='noise applies to process="sde" only'):
        lesde.Config(process="sgd", noise="two_point")


def _cross_entropy_run(noise, scheme, dt):
    """A coupled cross-entropy LE-SDE with strong drift and noise; final loss and means."""
    res = lesde.simulate(
        n_classes=3,
        n_per_class=10_000,
        signal="cross_entropy",
        alpha=3.0,
        beta=0.0,
        sigma=2.0,
        init_scale=0.3,
        init_means=2 * (np.eye(3) - 1 / 3),
        noise=noise,
        scheme=scheme,
        dt=dt,
        t_end=1.0,
        record_every=int(round(1 / dt)),
        seed=1,
        noise_seed=1001,
        progress=False,
    )
    return res.metrics["loss"][0, -1], res.class_means[0, -1]


@pytest.mark.parametrize("noise", ["gaussian", "two_point", "three_point"])
def test_heun_removes_the_first_order_drift_error_of_euler_with_every_noise(noise):
    # Euler and Heun draw the same increments at the same dt (and start from the same state),
    # so their difference is nearly free of Monte Carlo noise: it is Euler's first-order drift
    # error, which Heun's corrector removes. Measured slope 1.01-1.04 over these dt (two
    # seeds, every noise); the full weak errors with error bars are in docs/performance.md.
    dts = np.array([0.2, 0.1, 0.05, 0.025])
    loss_gap, means_gap = [], []
    for dt in dts:
        loss_e, means_e = _cross_entropy_run(noise, "euler_maruyama", dt)
        loss_h, means_h = _cross_entropy_run(noise, "heun", dt)
        loss_gap.append(abs(loss_e - loss_h))
        means_gap.append(np.abs(means_e - means_h).max())
    for name, gap in (("loss", loss_gap), ("class means", means_gap)):
        slope = np.polyfit(np.log(dts), np.log(gap), 1)[0]
        declared = (
            scheme_orders("heun", noise)["ode"] - scheme_orders("euler_maruyama", noise)["ode"]
        )
        assert abs(slope - declared) < 0.15, (
            f"{noise}: Euler - Heun in the {name} shrinks like dt^{slope:.2f}, expected dt^1 "
            f"(gaps {np.array(gap)})"
        )


def test_a_killed_run_with_weak_noise_resumes_bit_identically(tmp_path):
    # The noise kind travels in the checkpoint: a run killed after its first checkpoint and
    # resumed draws the same increments as the run done in one go.
    import signal
    import subprocess
    import sys
    import time

    cfg = lesde.Config(
        n_classes=3,
        n_per_class=20_000,
        noise="three_point",
        scheme="heun",
        sigma=0.5,
        dt=0.002,
        steps=400,
        record_every=5,
        seed=5,
        threads=1,
    )
    (tmp_path / "cfg.toml").write_text(cfg.to_toml())
    path = tmp_path / "run.ckpt"
    child_code = (
        "import sys, lesde\n"
        "cfg = lesde.Config.from_toml(open(sys.argv[1]).read())\n"
        "lesde.simulate(cfg, checkpoint=sys.argv[2], checkpoint_every=10, progress=False)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", child_code, str(tmp_path / "cfg.toml"), str(path)],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while not path.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert path.exists(), f"no checkpoint appeared: {child.communicate()[0]!r}"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.communicate()
    saved = lesde.sim.checkpoint.read_checkpoint(path)
    assert saved.config.noise == "three_point" and 0 < saved.step < cfg.n_steps
    resumed = lesde.resume(path, progress=False)
    whole = lesde.simulate(cfg, progress=False)
    np.testing.assert_array_equal(resumed.features, whole.features)
    np.testing.assert_array_equal(resumed.class_means, whole.class_means)


def test_cli_run_takes_the_noise_and_records_it(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "run.npz"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lesde",
            "run",
            "--set",
            "noise='two_point'",
            "--set",
            "steps=5",
            "--set",
            "n_per_class=50",
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert lesde.load(out).config.noise == "two_point"
