"""Fuzzing bad input: every outcome is a valid object or a ValueError/TypeError, never a crash.

Three targets, each with a modest, fixed number of hypothesis examples (derandomized, so
a run is reproducible and the file stays well under 30 s):

- ``lesde.Config``: random values for random fields (ints, huge ints, floats incl. NaN/inf,
  strings, lists, dicts, arrays of any shape and dtype). A Config that is accepted must
  round-trip through TOML and be accepted by the C++ engine's own check.
- ``lesde.metrics``: random shapes, dtypes (int, float16/32, bool, complex, big-endian),
  NaN/inf, empty classes, non-contiguous and read-only arrays. A call that succeeds must
  equal the call on a clean, native, contiguous float64/int64 copy, and never modify its
  input.
- result files (``lesde.load``): truncations and byte flips are refused or harmless.
"""

import dataclasses
import math
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lesde
from lesde import metrics
from lesde.sim.engine import engine_config

# No database and no "explain" phase: nothing is written into the source tree.
PHASES = [Phase.explicit, Phase.generate, Phase.shrink]
FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow],
)

# ---------------------------------------------------------------------- generic values
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 1e-320, 5e-324, 1e308, -1e308, 0.5, 1.0, 2.0, 1e-3, 1e-12]
)
INTS = (
    st.integers(-5, 12)
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([2**31 - 1, 2**31, 2**63 - 1, 2**64 - 1, 2**64])
)
DTYPES = st.sampled_from(
    [
        np.int64,
        np.int32,
        np.uint8,
        np.float64,
        np.float32,
        np.float16,
        np.bool_,
        np.complex128,
        ">f8",
        ">i4",
        "<U3",
    ]
)
ARRAYS = hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
SCALAR = (
    st.none()
    | st.booleans()
    | INTS
    | FLOATS
    | st.text(max_size=6)
    | st.sampled_from(
        [
            np.float32("nan"),
            np.int64(3),
            np.float64(2.0),
            1 + 2j,
            b"x",
            "linear",
            "sgd",
            "heun",
            "float32",
            object(),
        ]
    )
)
SCHEDULE_DICTS = st.fixed_dictionaries(
    {"kind": st.sampled_from(["constant", "power_law", "exponential", "tabulated", "wavy"])},
    optional={
        "value": SCALAR,
        "a0": SCALAR,
        "tau": SCALAR,
        "gamma": SCALAR,
        "times": st.lists(FLOATS, max_size=3),
        "values": st.lists(FLOATS, max_size=3),
        "bogus": SCALAR,
    },
)
VALUES = (
    SCALAR
    | ARRAYS
    | SCHEDULE_DICTS
    | st.lists(SCALAR, max_size=4)
    | st.lists(st.integers(-2, 40), max_size=5)
    | st.tuples(st.lists(FLOATS, max_size=3), st.lists(FLOATS, max_size=3))
)

# Field-aware values, so that combinations get past the first check now and then.
LIKELY = {
    "n_classes": st.integers(1, 5),
    "n_per_class": st.integers(-1, 50),
    "class_sizes": st.lists(st.integers(-1, 30), min_size=1, max_size=5),
    "dim": st.integers(0, 6),
    "signal": st.sampled_from(["linear", "projected", "cross_entropy"]),
    "alpha": FLOATS,
    "beta": FLOATS,
    "sigma": FLOATS,
    "impact": hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 4))),
    "label_noise": FLOATS,
    "init_scale": FLOATS,
    "init_means": hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 4))),
    "head": hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 6))),
    "process": st.sampled_from(["sde", "sgd"]),
    "scheme": st.sampled_from(["euler_maruyama", "heun"]),
    "noise": st.sampled_from(["gaussian", "two_point", "three_point", "uniform", 3]),
    "dt": FLOATS,
    "t_end": FLOATS,
    "steps": INTS,
    "batch_size": INTS,
    "replicas": INTS,
    "seed": INTS,
    "noise_seed": INTS,
    "threads": INTS,
    "dtype": st.sampled_from(["float64", "float32", "float16"]),
    "backend": st.sampled_from(["cpu", "auto", "cuda", "gpu"]),
    "record_every": INTS,
    "record_samples": st.integers(-1, 5) | st.lists(st.integers(-1, 60)),
}
FIELDS = [f.name for f in dataclasses.fields(lesde.Config)]
assert set(LIKELY) == set(FIELDS), "a Config field has no fuzzing strategy"


@st.composite
def config_fields(draw):
    names = draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=6, unique=True))
    return {n: draw(VALUES) if draw(st.integers(0, 9)) >= 7 else draw(LIKELY[n]) for n in names}


def _few_records(cfg):
    """True when the config's record grid is small enough to build here."""
    return cfg.n_steps // cfg.record_interval < 100_000 and cfg.n_samples < 10**6


@FUZZ
@given(config_fields())
@example({"dt": 5e-324})  # t_end / dt overflows to inf
@example({"t_end": 1e308, "dt": 1e-10})
@example({"seed": 2**64 - 1, "noise_seed": 0})
@example({"impact": np.full((3, 3), 1 + 1j)})  # complex: the imaginary part is not dropped
@example({"sigma": ([0.0, 1.0], [1j, 2.0])})
def test_config_accepts_or_raises_value_or_type_error(fields):
    try:
        with warnings.catch_warnings():  # e.g. a ComplexWarning would mean data were dropped
            warnings.simplefilter("error", RuntimeWarning)
            warnings.simplefilter("error", np.exceptions.ComplexWarning)
            cfg = lesde.Config(**fields)
    except (ValueError, TypeError):
        return
    # Accepted: it must describe itself, round-trip, and pass the engine's check.
    assert lesde.Config.from_toml(cfg.to_toml()) == cfg
    assert cfg.n_steps >= 1 and cfg.p >= 1 and cfg.n_samples >= cfg.n_classes
    if _few_records(cfg):
        engine_config(cfg)  # the C++ EngineConfig::check() raises on anything it cannot run
        steps = cfg.record_steps
        assert steps[0] == 0 and steps[-1] == cfg.n_steps
        # Counting and finding records is arithmetic, and agrees with the grid built here.
        assert cfg.n_records == steps.size
        for step in {0, 1, 2, cfg.record_interval, cfg.n_steps - 1, cfg.n_steps}:
            i = int(np.searchsorted(steps, step))
            expected = i if i < steps.size and steps[i] == step else -1
            assert cfg.record_index(step) == expected, step
            assert cfg.next_record_step(step) == steps[min(i, steps.size - 1)], step


@FUZZ
@given(st.dictionaries(st.text(max_size=8), VALUES, max_size=3))
def test_config_from_dict_and_toml_text(data):
    try:
        lesde.Config.from_dict(data)
    except (ValueError, TypeError):
        pass
    text = "\n".join(f"{k!r} = {v!r}" for k, v in data.items())
    try:
        lesde.Config.from_toml(text + "\n")
    except (ValueError, TypeError):
        pass


NESTED = st.integers(1, 100_000).map(lambda depth: "[" * depth + "]" * depth)


@FUZZ
@given(st.text(max_size=30) | NESTED | st.builds("{}\n{}".format, st.text(max_size=9), NESTED))
@example("1\nbeta=5")  # a second line used to set another field, or vanish
@example("[" * 100_000 + "]" * 100_000)  # nesting used to end in a RecursionError
@example('{kind="power_law", a0=1, tau=2, gamma=0.5}')
def test_set_values_parse_or_are_refused_in_one_line(text):
    from lesde.cli.common import UsageError
    from lesde.cli.config import parse_set

    try:
        parsed = parse_set([f"alpha={text}"])
    except UsageError as err:
        assert "\n" not in str(err).strip() and "alpha" in str(err)
        return
    assert list(parsed) == ["alpha"]  # one --set, one field
    assert "\n" not in text.strip() and "\r" not in text.strip()  # outer blanks are trimmed


# ---------------------------------------------------------------------- metrics
# Mostly valid data in varied dtypes and layouts (so that results can be compared with a
# clean copy), with a seldom-drawn bad aspect: a dtype metrics must refuse (bool, complex),
# NaN/inf, a wrong shape, empty arrays, out-of-range labels, empty classes, a bad n_classes.
REAL_DTYPES = [
    np.float64,
    np.float32,
    ">f8",
    ">f4",
    np.int64,
    np.int32,
    np.uint8,
    ">i8",
    np.float16,
]
BAD_DTYPES = [np.bool_, np.complex128, "<U4"]
LABEL_DTYPES = [np.int64, np.int32, np.uint8, np.int8, ">i8", np.uint64]
LAYOUTS = ["c", "fortran", "strided", "readonly", "list"]


def _materialize(values, dtype, layout):
    """``values`` as an array of ``dtype`` with the given memory layout (or a list)."""
    with np.errstate(all="ignore"):
        arr = np.array(values).astype(dtype)
    if layout == "fortran":
        arr = np.asfortranarray(arr)
    elif layout == "strided" and arr.ndim >= 1:  # every other row of a twice as big buffer
        big = np.zeros((2 * arr.shape[0],) + arr.shape[1:], dtype=arr.dtype)
        big[::2] = arr
        arr = big[::2]
    elif layout == "readonly":
        arr = arr.copy()
        arr.flags.writeable = False
    elif layout == "list":
        return arr.tolist()
    return arr


def _native(a):
    """A clean copy: C-contiguous, writeable, native byte order, same values."""
    if a is None or not isinstance(a, (np.ndarray, list)):
        return a
    arr = np.array(a)
    return np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("="))).copy()


def _rarely(draw, p_in_10=1):
    # High values mean "yes": hypothesis favours (and shrinks towards) 0.
    return draw(st.integers(0, 9)) >= 10 - p_in_10


@st.composite
def metric_inputs(draw):
    n, p = draw(st.integers(1, 9)), draw(st.integers(1, 4))
    k = draw(st.integers(1, 4)) if _rarely(draw, 3) else p  # k == p: X can be logits
    if _rarely(draw):
        n, p = draw(st.sampled_from([(0, p), (n, 0), (0, 0)]))
    X = draw(
        hnp.arrays(
            np.float64,
            (n, p),
            elements=st.integers(-6, 6).map(float) | st.floats(-5, 5, allow_nan=False, width=16),
        )
    )
    if _rarely(draw) and X.size:
        X.flat[draw(st.integers(0, X.size - 1))] = draw(
            st.sampled_from([np.nan, np.inf, -np.inf, 1e300, 1e-310])
        )
    if _rarely(draw):
        X = X.reshape(-1) if draw(st.booleans()) else X[None]
    y = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1)))
    if _rarely(draw):  # wrong length or out-of-range labels
        y = draw(hnp.arrays(np.int64, (draw(st.integers(0, 9)),), elements=st.integers(-1, 5)))
    x_dtype = (
        draw(st.sampled_from(BAD_DTYPES)) if _rarely(draw) else draw(st.sampled_from(REAL_DTYPES))
    )
    y_dtype = (
        draw(st.sampled_from([np.float64, np.bool_]))
        if _rarely(draw)
        else draw(st.sampled_from(LABEL_DTYPES))
    )
    X = _materialize(X, x_dtype, draw(st.sampled_from(LAYOUTS)))
    y = _materialize(y, y_dtype, draw(st.sampled_from(LAYOUTS)))
    n_classes = None
    if _rarely(draw, 4):  # often more classes than labels present: empty classes
        n_classes = draw(st.integers(k, 6) | st.sampled_from([-1, 0, 2.0, "3", True]))
    head = None
    if _rarely(draw, 4):
        hk, hp = draw(st.integers(1, 4)), p if not _rarely(draw) else draw(st.integers(0, 5))
        head = _materialize(
            draw(hnp.arrays(np.float64, (hk, hp), elements=st.floats(-3, 3))),
            draw(st.sampled_from(REAL_DTYPES)),
            draw(st.sampled_from(LAYOUTS)),
        )
    return X, y, n_classes, head


def _call(name, X, y, n_classes, head):
    f = getattr(metrics, name.split("-")[0])
    if name in ("class_means", "within_between", "nc1", "nc2", "ncc_accuracy"):
        return f(X, y, n_classes)
    if name in ("loss", "accuracy"):
        return f(X, y, head)
    if name == "nc4":
        return f(X, y, head, n_classes)
    if name == "summary":
        return f(X, y, head=head, classes=y, n_classes=n_classes)
    if name == "logits":
        return f(X, head)
    if name == "ncc_predict":  # the rows of X, grouped by y, as centres
        return f(X, X if head is None else head)
    if name.startswith("separable"):
        method = name.split("-")[1]
        return f(
            X, y, method=method, head=head if method == "argmax" else None, n_classes=n_classes
        )
    if name == "nc1_from_moments":  # sigma_w: the first p rows of X; means: all of X
        return f(X[: np.shape(X)[-1]] if np.ndim(X) else X, X)
    if name == "nc2_from_means":
        return f(X)
    if name == "loss_tail_exponent":  # times 1, 2, ... and a loss made of X's values
        flat = np.asarray(X).reshape(-1)
        return f(np.arange(1.0, flat.size + 1.0), flat)
    raise AssertionError(name)


METRIC_CALLS = [
    "class_means",
    "within_between",
    "nc1",
    "nc2",
    "ncc_accuracy",
    "loss",
    "accuracy",
    "nc4",
    "summary",
    "logits",
    "ncc_predict",
    "separable-ncc",
    "separable-lp",
    "separable-argmax",
    "nc1_from_moments",
    "nc2_from_means",
    "loss_tail_exponent",
]


def _same(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if dataclasses.is_dataclass(a):
        return _same(dataclasses.astuple(a), dataclasses.astuple(b))
    if isinstance(a, (np.ndarray, float, int, np.floating, np.integer)):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    return a == b


def _snapshot(x):
    return None if x is None else (np.array(x, copy=True) if isinstance(x, np.ndarray) else repr(x))


@pytest.mark.parametrize("name", METRIC_CALLS)
@settings(FUZZ, max_examples=40)
@given(inputs=metric_inputs())
def test_metrics_work_like_on_a_clean_copy_or_refuse(name, inputs):
    X, y, n_classes, head = inputs
    before = [_snapshot(a) for a in (X, y, head)]
    try:
        with np.errstate(all="ignore"):
            got = _call(name, X, y, n_classes, head)
    except (ValueError, TypeError):
        return
    clean = _call(name, _native(X), _native(y), n_classes, _native(head))
    assert _same(got, clean), f"{name}: {got!r} != {clean!r} on a clean copy"
    for old, new in zip(before, (X, y, head), strict=True):  # inputs are never modified
        if isinstance(old, np.ndarray):
            assert old.tobytes() == np.asarray(new).tobytes()


def test_metrics_on_big_endian_strided_readonly_input_match_exactly():
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(3), 40)
    X = 3.0 * np.eye(3)[y] + rng.normal(size=(120, 3))
    weird = np.zeros((240, 6), dtype=">f8")
    weird[::2, ::2] = X
    weird = weird[::2, ::2]
    weird.flags.writeable = False
    y_weird = y.astype(">i4")
    assert not weird.flags.c_contiguous and not weird.dtype.isnative
    a = metrics.summary(weird, y_weird, classes=y_weird)
    b = metrics.summary(X, y, classes=y)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == b[key] or (math.isnan(a[key]) and math.isnan(b[key])), key


# ---------------------------------------------------------------------- result files
@pytest.fixture(scope="module")
def result_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("res") / "run.npz"
    lesde.simulate(
        n_classes=3,
        n_per_class=8,
        steps=12,
        record_every=3,
        replicas=2,
        record_samples=2,
        threads=1,
        progress=False,
    ).save(path)
    return path


@settings(FUZZ, max_examples=40)
@given(cut=st.floats(0.0, 0.999))
def test_truncated_result_files_are_refused(result_file, tmp_path_factory, cut):
    raw = result_file.read_bytes()
    bad = tmp_path_factory.mktemp("cut") / "cut.npz"
    bad.write_bytes(raw[: int(cut * len(raw))])
    with pytest.raises(ValueError, match="damaged or truncated|not a lesde result"):
        lesde.load(bad)


@settings(FUZZ, max_examples=80)
@given(data=st.data())
def test_flipped_bytes_in_result_files_are_refused_or_harmless(result_file, tmp_path_factory, data):
    raw = bytearray(result_file.read_bytes())
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] ^= 1 << data.draw(st.integers(0, 7))
    bad = tmp_path_factory.mktemp("flip") / "flip.npz"
    bad.write_bytes(bytes(raw))
    try:
        back = lesde.load(bad)
    except ValueError:
        return
    good = lesde.load(result_file)  # the flip hit zip metadata no reader depends on
    same = lambda a, b: a.dtype == b.dtype and a.tobytes() == b.tobytes()  # noqa: E731
    for name in ("times", "class_means", "features", "labels", "status", "fail_step"):
        assert same(getattr(back, name), getattr(good, name)), name
    for name in good.metrics:
        assert same(back.metrics[name], good.metrics[name]), name
    assert back.config == good.config and back.steps_done == good.steps_done


@pytest.mark.parametrize(
    "drop", ["metric__loss", "metric__nc1", "class_means", "status", "times", "labels"]
)
def test_result_file_missing_an_array_is_refused(result_file, tmp_path, drop):
    with np.load(result_file, allow_pickle=False) as data:
        files = {name: data[name] for name in data.files if name != drop}
    np.savez(tmp_path / "part.npz", **files)
    with pytest.raises(ValueError, match="missing " + drop):
        lesde.load(tmp_path / "part.npz")


@pytest.mark.parametrize(
    "name, change",
    [
        ("metric__accuracy", lambda a: a[:, :-1]),
        ("features", lambda a: a[:, :-1]),
        ("sigma_w", lambda a: a[..., :1]),
        ("labels", lambda a: a.astype(np.float64)),
        ("times", lambda a: a.reshape(1, -1)),
    ],
)
def test_result_file_with_a_misshapen_array_is_refused(result_file, tmp_path, name, change):
    with np.load(result_file, allow_pickle=False) as data:
        files = {n: data[n] for n in data.files}
    files[name] = change(files[name])
    np.savez(tmp_path / "bad.npz", **files)
    with pytest.raises(ValueError, match="damaged|times must be"):
        lesde.load(tmp_path / "bad.npz")


def test_result_zip_without_header_or_with_bad_header_is_refused(result_file, tmp_path):
    np.savez(tmp_path / "plain.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="no header"):
        lesde.load(tmp_path / "plain.npz")
    with np.load(result_file, allow_pickle=False) as data:
        files = {n: data[n] for n in data.files}
    files["header"] = np.array("{not json")
    np.savez(tmp_path / "h.npz", **files)
    with pytest.raises(ValueError, match="unreadable header"):
        lesde.load(tmp_path / "h.npz")
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    with pytest.raises(ValueError):
        lesde.load(tmp_path / "empty.npz")
    with pytest.raises(FileNotFoundError):
        lesde.load(tmp_path / "absent.npz")


# ---------------------------------------------------------------------- memory
def test_memory_estimate_never_builds_the_record_grid(monkeypatch):
    """2^31 records would need 16 GiB just for their step numbers: refuse, don't build."""

    def built(self):
        raise AssertionError("record_steps was built before the memory check")

    monkeypatch.setattr(lesde.Config, "record_steps", property(built))
    cfg = lesde.Config(n_classes=2, n_per_class=10, steps=2**31 - 1, record_every=1)
    assert cfg.state_bytes() > 2**31 * 8
    with pytest.raises(lesde.InsufficientMemoryError, match="GiB"):
        lesde.simulate(cfg, progress=False)
