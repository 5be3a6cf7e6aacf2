"""Figures of fits people read: the replay names its classes and shows its error, the
prediction marks "never" as such."""

import matplotlib as mpl
import numpy as np
import pytest

mpl.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lesde.data.sklearn_digits import DIGIT_NAMES  # noqa: E402
from lesde.plot.fits import prediction_timeline, replay_comparison  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.mark.parametrize("names", [("ellipse", "rectangle", "triangle"), DIGIT_NAMES])
def test_replay_names_the_classes_and_shows_the_error(names):
    K = len(names)
    t = np.linspace(0.0, 1.0, 6)
    m = t[:, None, None] * (np.eye(K) - 1.0 / K)
    replays = {"scalar": (t, m), "measured E": (t, 0.9 * m)}
    errors = {"scalar": 0.44, "measured E": 0.1234}
    fig = replay_comparison(t, m, replays, class_names=names, errors=errors)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == [f"class {n}: mean logits" for n in names]
    title = fig.texts[0].get_text()
    assert "scalar 0.440" in title and "measured E 0.123" in title, title
    legend = [x.get_text() for x in shown[0].get_legend().get_texts()]
    assert f"logit {names[-1]} (genuine)" in legend and "measured E" in legend, legend
    with pytest.raises(ValueError, match=f"name the K = {K} classes, got 2"):
        replay_comparison(t, m, {}, class_names=names[:2])


def test_replay_without_names_is_as_before():
    t = np.linspace(0.0, 1.0, 6)
    m = np.ones((6, 3, 3))
    fig = replay_comparison(t, m, {"copy": (t, m)})
    assert fig.axes[0].get_title() == "class 0: mean logits m_0(t)" and not fig.texts


def test_a_never_prediction_is_drawn_as_never_and_not_joined():
    fractions = [0.1, 0.2, 0.3, 0.4]
    predicted = {"loss_halves": [np.inf, np.inf, 16.0, 17.0]}
    intervals = {"loss_halves": [(np.inf, np.inf), (30.0, np.inf), (15.0, 18.0), (16.0, 18.5)]}
    fig = prediction_timeline(fractions, predicted, intervals, {"loss_halves": [17.0, 18.0]},
                              t_end=50.0)  # fmt: skip
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("never") == 2, texts
    for line in ax.get_lines():  # no line joins a never to a finite prediction
        x, y = (np.asarray(v, dtype=float) for v in line.get_data())
        if line.get_linestyle() == "-" and x.size == len(fractions):
            assert np.isnan(y[:2]).all() and np.allclose(y[2:], [16.0, 17.0]), y
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(label.startswith("predicted: never") for label in labels), labels


def test_a_prediction_outside_its_interval_is_drawn():
    """The median of the LE-SDE runs can lie outside the bootstrap interval of that median
    (a few resampled runs); matplotlib refuses negative error bars, so the figure failed."""
    fig = prediction_timeline([0.3, 0.6], {"loss_halves": [0.49, 0.5]},
                              {"loss_halves": [(0.52, 0.6), (0.4, 0.45)]},
                              {"loss_halves": [0.7, 0.8]}, t_end=4.0)  # fmt: skip
    assert len(fig.axes) == 1
