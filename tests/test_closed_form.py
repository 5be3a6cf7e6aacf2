"""Closed forms and convergence order: the linear LE-ODE (docs/model.md section 2c).

Every test runs on each backend present (conftest.py ``backend``); the convergence orders
are the ones the core declares for its schemes (``lesde.sim.engine.scheme_orders``).
"""

import numpy as np
import pytest

import lesde
from lesde.sim.engine import scheme_orders
from lesde.sim.schedules import PowerLaw

K = 3
MEANS0 = np.array([[1.0, 0.2, -0.3], [-0.4, 0.9, 0.1], [0.3, -0.5, 0.7]])


def closed_form(t, A, B):
    """Class means of the linear model with balanced classes (docs/model.md 2c)."""
    mbar0 = MEANS0.mean(axis=0)
    d0 = MEANS0 - mbar0
    return np.exp((A + (K - 1) * B) / K) * mbar0 + np.exp((A - B) / K) * d0


def final_means(dt, scheme, alpha=1.0, beta=0.3, t_end=1.0, backend="cpu"):
    res = lesde.simulate(
        n_classes=K,
        n_per_class=2,
        signal="linear",
        alpha=alpha,
        beta=beta,
        sigma=0.0,
        init_scale=0.0,
        init_means=MEANS0,
        dt=dt,
        t_end=t_end,
        scheme=scheme,
        backend=backend,
        progress=False,
    )
    return res.class_means[0, -1]


CASES = {
    "constant": (1.0, 0.3, lambda t: (1.0 * t, 0.3 * t)),
    "power_law": (
        PowerLaw(a0=2.0, tau=0.5, gamma=0.5),
        0.3,
        lambda t: (2.0 * 0.5 / 0.5 * ((1 + t / 0.5) ** 0.5 - 1), 0.3 * t),
    ),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("scheme", ["euler_maruyama", "heun"])
def test_linear_class_means_converge_at_the_scheme_order(case, scheme, backend):
    order = scheme_orders(scheme)["ode"]  # what the core declares
    alpha, beta, integrals = CASES[case]
    exact = closed_form(1.0, *integrals(1.0))
    dts = [0.02, 0.01, 0.005, 0.0025]
    errors = [
        np.abs(final_means(dt, scheme, alpha, beta, backend=backend) - exact).max() for dt in dts
    ]
    slope = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    assert abs(slope - order) < 0.15, (
        f"{scheme}: observed order {slope:.2f}, expected {order} (errors {errors})"
    )
    assert errors[-1] < (2e-3 if order == 1 else 2e-6), f"{scheme}: error {errors[-1]} too large"


def test_within_class_deviations_get_no_drift(backend):
    # Linear signal, sigma = 0: every sample of a class moves by the same amount, so the
    # spread around the class mean is frozen (docs/model.md section 3).
    res = lesde.simulate(
        n_classes=K,
        n_per_class=50,
        signal="linear",
        alpha=1.0,
        beta=0.2,
        sigma=0.0,
        init_scale=0.5,
        t_end=1.0,
        backend=backend,
        progress=False,
    )
    start = np.trace(res.sigma_w[0, 0])
    end = np.trace(res.sigma_w[0, -1])
    assert end == pytest.approx(start, rel=1e-10), "within-class spread changed without noise"


def test_full_impact_matrix_matches_matrix_exponential(backend):
    from scipy.linalg import expm

    E = np.array([[1.0, 0.2, 0.5], [0.1, 0.8, 0.0], [0.3, 0.3, 1.2]])
    sizes = (2, 3, 5)
    pi = np.array(sizes) / sum(sizes)
    res = lesde.simulate(
        n_classes=K,
        class_sizes=sizes,
        signal="linear",
        impact=E,
        sigma=0.0,
        init_scale=0.0,
        init_means=MEANS0,
        dt=0.001,
        t_end=1.0,
        scheme="heun",
        backend=backend,
        progress=False,
    )
    exact = expm((E * pi[None, :]) * 1.0) @ MEANS0
    np.testing.assert_allclose(
        res.class_means[0, -1], exact, rtol=1e-6, err_msg="LE-ODE with a full impact matrix is off"
    )
