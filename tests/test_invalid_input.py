"""Invalid input: a clear ValueError/TypeError that names the field, never a crash.

One rule for every entry point (lesde.validate): a value of the wrong type (a bool, a
string or None where a number is expected, 2.5 where an integer is expected) is a
TypeError; a value of the right type out of range, not finite, or not among the choices is
a ValueError.
"""

import math

import numpy as np
import pytest

import lesde
from lesde.analysis.estimate import impact_integrals, impact_rates
from lesde.data import cifar10, corrupt_labels, geometric_shapes

CASES = [
    (dict(n_classes=1), ValueError, "n_classes"),
    (dict(n_classes=2.5), TypeError, "n_classes"),
    (dict(n_per_class=0), ValueError, "n_per_class"),
    (dict(n_per_class=-3), ValueError, "n_per_class"),
    (dict(class_sizes=[10, 0, 5]), ValueError, "class_sizes"),
    (dict(class_sizes=[10, 10]), ValueError, "class_sizes"),
    (dict(impact=np.eye(2)), ValueError, "impact"),
    (dict(impact=np.eye(3), alpha=1.0), ValueError, "impact"),
    (dict(impact=[[1, 0, 0], [0, np.nan, 0], [0, 0, 1]]), ValueError, "impact"),
    (dict(dim=5), ValueError, "head"),  # cross_entropy, p != K, no head
    (dict(dim=5, signal="projected"), ValueError, "projected"),
    (dict(head=np.ones((2, 3))), ValueError, "head"),
    (dict(label_noise=1.5), ValueError, "label_noise"),  # 1.0 is allowed: see below
    (dict(label_noise=-0.1), ValueError, "label_noise"),
    (dict(dt=0.0), ValueError, "dt"),
    (dict(dt=-1e-3), ValueError, "dt"),
    (dict(dt=float("nan")), ValueError, "dt"),
    (dict(alpha=float("nan")), ValueError, "alpha"),
    (dict(beta=float("inf")), ValueError, "beta"),
    (dict(sigma=-1.0), ValueError, "sigma"),
    (dict(sigma="big"), TypeError, "sigma"),
    (dict(signal="softmax"), ValueError, "signal"),
    (dict(process="ode"), ValueError, "process"),
    (dict(scheme="rk4"), ValueError, "scheme"),
    (dict(dtype="float16"), ValueError, "dtype"),
    (dict(backend="gpu"), ValueError, "backend"),
    (dict(process="sgd", scheme="heun"), ValueError, "scheme"),
    (dict(t_end=1.0, steps=7, dt=0.1), ValueError, "t_end"),
    (dict(t_end=0.0), ValueError, "t_end"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(replicas=0), ValueError, "replicas"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(threads=0), ValueError, "threads"),
    (dict(record_every=0), ValueError, "record_every"),
    (dict(record_samples=[10**9]), ValueError, "record_samples"),
    # 2^40 increments per replica and step at most: the ziggurat keys a normal's retries by
    # its index (rng.hpp); a sharded run over many ranks could otherwise reach it.
    (
        dict(n_classes=2, n_per_class=2**30 - 1, dim=1024, signal="linear"),
        ValueError,
        "n_samples x dim must be < 2^40",
    ),
    (dict(init_means=np.zeros((2, 3))), ValueError, "init_means"),
    (dict(alpha={"kind": "power_law", "a0": 1.0, "tau": -1.0, "gamma": 1.0}), ValueError, "tau"),
    (dict(alpha={"kind": "wavy"}), ValueError, "alpha"),
    (dict(sigma=([0.0, 0.0], [1.0, 2.0])), ValueError, "increasing"),
    # A horizon that is not a whole number of steps used to be rounded silently.
    (dict(t_end=1.0, dt=0.3), ValueError, "t_end=0.9 (steps=3) or t_end=1.2 (steps=4)"),
    (dict(t_end=0.001, dt=0.01), ValueError, "t_end=0.01 (steps=1)"),
    # One SGD step of 10^9 draws from 30 samples: minutes that Ctrl-C cannot interrupt.
    (dict(batch_size=10**9, n_per_class=10, process="sgd"), ValueError, "batch_size"),
    (dict(batch_size=31, n_per_class=10, process="sgd"), ValueError, "N = 30"),
    # sigma < 0 at some time, through a schedule as through a constant.
    (dict(sigma={"kind": "power_law", "a0": -1.0, "tau": 1.0, "gamma": 1.0}), ValueError, "sigma"),
    (dict(sigma={"kind": "power_law", "a0": -1.0, "tau": 1.0, "gamma": -1.0}), ValueError, "bound"),
    (dict(sigma={"kind": "exponential", "a0": -0.1, "tau": 1.0}), ValueError, "sigma"),
    (dict(sigma=([0.0, 1.0, 2.0], [1.0, -0.5, 1.0])), ValueError, "reaches -0.5"),
    (
        dict(sigma=lesde.Tabulated(times=[0.0, 1.0], values=[0.5, -1e-9])),
        ValueError,
        "sigma must be >= 0",
    ),
    # A 2-D table is a mistake, not a series to flatten.
    (dict(alpha=([[0.0, 1.0], [2.0, 3.0]], [1.0, 1.0, 1.0, 1.0])), ValueError, "1-D"),
    (
        dict(beta={"kind": "tabulated", "times": [0.0, 1.0], "values": [[1.0], [2.0]]}),
        ValueError,
        "beta",
    ),
]


@pytest.mark.parametrize("fields,error,word", CASES, ids=[str(c[0])[:60] for c in CASES])
def test_invalid_config_raises_a_clear_error(fields, error, word):
    with pytest.raises(error) as info:
        lesde.Config(**fields)
    assert word in str(info.value), f"message {str(info.value)!r} does not name {word!r}"


def test_whole_numbers_of_steps_are_accepted_despite_rounding():
    """t_end = n * dt computed in floating point (0.1 * 3 = 0.30000000000000004) is n steps;
    so is a horizon far beyond the float precision of one step."""
    for dt in (0.1, 0.01, 0.3, 0.05, 0.002, 1e-4, 7.0):
        for n in (1, 3, 7, 10, 333, 1000, 12345, 2**31 - 1):
            cfg = lesde.Config(t_end=n * dt, dt=dt)
            assert cfg.n_steps == n, (dt, n, cfg.n_steps)
    assert lesde.Config(t_end=0.3, dt=0.1).n_steps == 3
    assert lesde.Config(t_end=10.0, dt=0.05).n_steps == 200


def test_schedules_stay_generic_and_sigma_may_reach_zero():
    """Only sigma must be >= 0; alpha and beta may be negative; a decay to 0 is fine."""
    lesde.Config(alpha={"kind": "power_law", "a0": -1.0, "tau": 1.0, "gamma": 1.0})
    lesde.Config(beta=([0.0, 1.0], [-1.0, 1.0]))
    lesde.Config(sigma={"kind": "power_law", "a0": 1.0, "tau": 1.0, "gamma": 2.0})
    lesde.Config(sigma={"kind": "power_law", "a0": 1.0, "tau": 1.0, "gamma": -1.0})
    lesde.Config(sigma={"kind": "exponential", "a0": 0.0, "tau": 1.0})
    lesde.Config(sigma=([0.0, 1.0], [1.0, 0.0]))
    assert lesde.Config(batch_size=30, n_per_class=10, process="sgd").batch_size == 30
    with pytest.raises(ValueError, match="times must be a 1-D"):
        lesde.Tabulated(times=[[0.0, 1.0]], values=[1.0, 2.0])
    with pytest.raises(ValueError, match="values must be a 1-D"):
        lesde.Tabulated(times=[0.0], values=[[1.0]])


def test_label_noise_may_be_one():
    # p_err = 1 (every label moved to another class) is a probability like any other; the
    # Config, lesde.data.corrupt_labels and lesde.nn.train_and_record all allow [0, 1].
    assert lesde.Config(label_noise=1.0).label_noise == 1.0
    assert lesde.Config(label_noise=1).label_noise == 1.0


# Entry points that take an integer, a real number or one of a few names, each called with
# one value: the same mistake must give the same exception everywhere.
INTEGER_ARGUMENTS = {
    "n_classes": lambda v: lesde.Config(n_classes=v),
    "replicas": lambda v: lesde.Config(replicas=v),
    "n_per_class": lambda v: geometric_shapes(v, size=8),
    "n_classes ": lambda v: corrupt_labels([0, 1], 0.5, v),  # corrupt_labels' own n_classes
    "polyorder": lambda v: impact_rates([0.0, 1.0, 2.0], [0, 1, 2], [0, 1, 2], polyorder=v),
}
REAL_ARGUMENTS = {
    "dt": lambda v: lesde.Config(dt=v),
    "label_noise": lambda v: lesde.Config(label_noise=v),
    "power_law.tau": lambda v: lesde.PowerLaw(a0=1.0, tau=v, gamma=1.0),
    "blur": lambda v: geometric_shapes(1, size=8, blur=v),
    "p_err": lambda v: corrupt_labels([0, 1], v, 2),
}
CHOICE_ARGUMENTS = {
    "signal": lambda v: lesde.Config(signal=v),
    "backend": lambda v: lesde.Config(backend=v),
    "model": lambda v: impact_integrals(np.ones((3, 2, 2)), model=v),
    "split": lambda v: cifar10("/nonexistent", split=v),
    "on_nonfinite": lambda v: lesde.simulate(n_classes=2, n_per_class=2, on_nonfinite=v),
}


@pytest.mark.parametrize("field", INTEGER_ARGUMENTS)
@pytest.mark.parametrize(
    "value, error",
    [(2.5, TypeError), (True, TypeError), ("3", TypeError), (None, TypeError), (-1, ValueError)],
)
def test_integer_mistakes_are_classified_alike(field, value, error):
    with pytest.raises(error) as info:
        INTEGER_ARGUMENTS[field](value)
    assert field.strip() in str(info.value), f"message {str(info.value)!r} does not name {field}"


@pytest.mark.parametrize("field", INTEGER_ARGUMENTS)
def test_a_whole_float_is_accepted_as_an_integer(field):
    INTEGER_ARGUMENTS[field](3.0)  # e.g. 1e4 from TOML or a NumPy grid


@pytest.mark.parametrize("field", REAL_ARGUMENTS)
@pytest.mark.parametrize(
    "value, error",
    [
        ("0.1", TypeError),
        (True, TypeError),
        (None, TypeError),
        (1 + 0j, TypeError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        (-1.0, ValueError),
    ],
)
def test_real_number_mistakes_are_classified_alike(field, value, error):
    with pytest.raises(error) as info:
        REAL_ARGUMENTS[field](value)
    assert field in str(info.value), f"message {str(info.value)!r} does not name {field}"


@pytest.mark.parametrize("field", CHOICE_ARGUMENTS)
def test_choice_mistakes_are_classified_alike(field):
    with pytest.raises(TypeError, match=field):
        CHOICE_ARGUMENTS[field](3)
    with pytest.raises(ValueError, match=field) as info:
        CHOICE_ARGUMENTS[field]("nonsense")
    message = str(info.value)
    assert "must be one of" in message, message


def test_a_misspelt_choice_gets_a_suggestion():
    with pytest.raises(ValueError, match="did you mean 'test'"):
        cifar10("/nonexistent", split="tset")
    with pytest.raises(ValueError, match="did you mean 'warn'"):
        lesde.simulate(n_classes=2, n_per_class=2, on_nonfinite="wrn")


def test_unknown_field_has_a_hint():
    with pytest.raises(TypeError):
        lesde.Config(alhpa=1.0)
    with pytest.raises(ValueError, match="did you mean 'alpha'"):
        lesde.Config.from_dict({"alhpa": 1.0})
    with pytest.raises(ValueError, match="did you mean 'cross_entropy'"):
        lesde.Config(signal="cross_entropi")


def test_simulate_rejects_bad_arguments():
    with pytest.raises(TypeError):
        lesde.simulate("not a config")
    with pytest.raises(ValueError, match="on_nonfinite"):
        lesde.simulate(n_classes=2, on_nonfinite="explode")


def test_too_large_run_is_refused_before_allocating():
    cfg = lesde.Config(n_classes=10, n_per_class=200_000_000, dim=10, steps=1)
    with pytest.raises(lesde.InsufficientMemoryError, match="GiB"):
        lesde.simulate(cfg)


def test_engine_rejects_malformed_buffers():
    from lesde import _core
    from lesde.sim.engine import engine_config

    cfg = lesde.Config(n_classes=2, n_per_class=3, steps=2)
    e = engine_config(cfg)
    T = len(cfg.record_steps)
    good = dict(
        features=np.zeros((1, 6, 2)),
        labels=np.zeros((1, 6), np.int32),
        classes=np.array([0, 0, 0, 1, 1, 1], np.int32),
        noise_var=None,
        class_means=np.zeros((1, T, 2, 2)),
        label_means=np.zeros((1, T, 2, 2)),
        sigma_w=np.zeros((1, T, 2, 2)),
        scalars=np.zeros((1, T, _core.NUM_SCALARS)),
        samples=np.zeros((1, T, 0, 2)),
        status=np.zeros(1, np.int32),
        fail_step=np.zeros(1, np.int64),
    )
    _core.Simulation64(e, **good)
    bad = {
        "features": np.zeros((1, 5, 2)),
        "labels": np.zeros((1, 6), np.int64),
        "classes": np.array([0, 1, 0, 1, 1, 1], np.int32),
        "sigma_w": np.zeros((1, T, 2, 2))[:, :, :, ::-1],
    }
    for name, array in bad.items():
        with pytest.raises((ValueError, TypeError), match=name):
            _core.Simulation64(e, **{**good, name: array})
    readonly = np.zeros((1, 6, 2))
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        _core.Simulation64(e, **{**good, "features": readonly})


def test_cuda_backend_without_a_device_says_why():
    from lesde import _core

    if _core.cuda_device_count() > 0:
        pytest.skip("a GPU is visible")
    with pytest.raises(RuntimeError, match="backend='cuda' cannot run"):
        lesde.simulate(n_classes=2, n_per_class=5, steps=1, backend="cuda", progress=False)
    res = lesde.simulate(n_classes=2, n_per_class=5, steps=1, backend="auto", progress=False)
    assert res.ok, "backend='auto' must fall back to the CPU"
