"""Figures: each function returns its Figure/Axes with the artists it promises (Agg)."""

import matplotlib as mpl
import numpy as np
import pytest

mpl.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import lesde  # noqa: E402
from lesde import plot  # noqa: E402
from lesde.plot.style import metric_label  # noqa: E402
from lesde.sweep import label_noise_sweep, phase_diagram, sweep  # noqa: E402

SMALL = dict(n_classes=3, n_per_class=20, sigma=0.3, dt=0.05, seed=5)


@pytest.fixture(autouse=True)
def _no_show_and_close(monkeypatch):
    def show(*args, **kwargs):
        raise AssertionError("plot functions must not call plt.show()")

    monkeypatch.setattr(plt, "show", show)
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def phase_sweep():
    base = lesde.Config(signal="linear", t_end=1.0, record_every=20, **SMALL)
    return phase_diagram(base, [0.5, 2.0, 3.0], [0.5, 2.0], replicas=2, progress=False)


@pytest.fixture(scope="module")
def noise_sweep():
    base = lesde.Config(
        signal="cross_entropy", alpha=3.0, beta=0.5, t_end=1.0, record_every=20, **SMALL
    )
    return label_noise_sweep(base, [0.0, 0.5, 0.8], replicas=3, progress=False)


@pytest.fixture(scope="module")
def run():
    cfg = lesde.Config(
        signal="cross_entropy",
        alpha=3.0,
        beta=0.5,
        t_end=1.0,
        replicas=3,
        record_every=4,
        record_samples=12,
        **SMALL,
    )
    return lesde.simulate(cfg, progress=False)


def _lines_with_gid(ax, gid):
    return [line for line in ax.get_lines() if line.get_gid() == gid]


def test_phase_diagram_heatmap_with_boundary_and_colorbar(phase_sweep):
    ax = plot.phase_diagram(phase_sweep)
    assert isinstance(ax, mpl.axes.Axes)
    (boundary,) = _lines_with_gid(ax, "boundary")
    x, y = boundary.get_data()
    np.testing.assert_allclose(x, y)  # the line alpha = beta
    assert "α = β" in boundary.get_label()
    assert len(ax.figure.axes) == 2  # heatmap + colourbar
    mesh = ax.collections[0]
    values = np.asarray(mesh.get_array())
    assert values.size == 3 * 2
    expected = phase_sweep.summary()["separable_ncc_mean"].to_numpy()
    assert sorted(values.ravel()) == pytest.approx(sorted(expected))
    assert len(ax.texts) == 6  # annotated cells
    assert "α" in ax.get_xlabel() and "β" in ax.get_ylabel()


def test_phase_diagram_into_given_axes_and_other_metric(phase_sweep):
    fig, ax = plt.subplots()
    out = plot.phase_diagram(phase_sweep, metric="ncc_accuracy", ax=ax, annotate=False)
    assert out is ax and not ax.texts


def test_phase_diagram_draws_the_signals_headline_metric(phase_sweep):
    """A cross-entropy alpha x beta sweep was drawn as separable_ncc, which is high on both
    sides of alpha = beta there, so the transition looked reversed. The default is now the
    sweep's headline (Result.headline's table): loss for cross-entropy, separable_ncc for
    the linear signal; phase_diagrams draws a panel per headline metric."""
    base = lesde.Config(signal="cross_entropy", t_end=1.0, record_every=20, **SMALL)
    ce = phase_diagram(base, [0.5, 3.0], [0.5, 3.0], replicas=2, progress=False)
    assert ce.headline[:2] == ("loss", "accuracy")
    ax = plot.phase_diagram(ce)
    means = ce.summary()["loss_mean"].to_numpy()
    assert sorted(np.asarray(ax.collections[0].get_array()).ravel()) == pytest.approx(sorted(means))
    assert isinstance(ax.collections[0].norm, mpl.colors.LogNorm)  # positive losses
    assert ax.figure.axes[1].get_ylabel().endswith(metric_label("loss"))
    linear = plot.phase_diagram(phase_sweep)
    assert linear.figure.axes[1].get_ylabel() == metric_label("separable_ncc")

    for res, signal in ((ce, "cross_entropy"), (phase_sweep, "linear")):
        fig = plot.phase_diagrams(res)
        drawn = [a.get_label() for a in fig.axes if not a.get_label().startswith("<")]
        assert drawn == list(lesde.sim.result.HEADLINE_METRICS[signal])
    fig = plot.phase_diagrams(ce, metrics="accuracy")
    assert [a.get_label() for a in fig.axes][:1] == ["accuracy"]


def test_phase_diagram_needs_alpha_beta_and_a_choice_for_other_fields(noise_sweep):
    with pytest.raises(ValueError, match="alpha and beta"):
        plot.phase_diagram(noise_sweep)
    base = lesde.Config(signal="linear", t_end=0.5, record_every=10, **SMALL)
    res = sweep(base, {"alpha": [0.5, 2.0], "beta": [0.5], "t_end": [0.25, 0.5]}, progress=False)
    with pytest.raises(ValueError, match="t_end"):
        plot.phase_diagram(res)
    ax = plot.phase_diagram(res, where={"t_end": 0.5})
    assert np.asarray(ax.collections[0].get_array()).size == 2
    assert "t = 0.5" in ax.get_title()
    with pytest.raises(ValueError, match="no sweep rows"):
        plot.phase_diagram(res, where={"t_end": 0.3})


def test_label_noise_marks_transition_and_chance(noise_sweep):
    ax = plot.label_noise(noise_sweep)
    assert isinstance(ax, mpl.axes.Axes)
    (transition,) = _lines_with_gid(ax, "transition")
    assert transition.get_xdata()[0] == pytest.approx(2.0 / 3.0)
    assert "2/3" in transition.get_label()
    (chance,) = _lines_with_gid(ax, "chance")
    assert chance.get_ydata()[0] == pytest.approx(1.0 / 3.0)
    assert len(ax.collections) == 2  # one quantile ribbon per metric
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("clean accuracy" in s for s in labels)


def test_label_noise_single_metric(noise_sweep):
    ax = plot.label_noise(noise_sweep, metrics="clean_accuracy")
    assert len(ax.collections) == 1


def test_metric_over_time_panels_and_scales(run):
    """The default panels are the run's headline series (loss and accuracy drawn for a
    linear run said nothing: that signal never pulls the features to their labels)."""
    fig = plot.metric_over_time(run)
    assert isinstance(fig, mpl.figure.Figure)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    headline = [m for m in run.headline if m in run.metrics]
    assert headline == ["loss", "accuracy", "ncc_accuracy", "nc1", "etf_distance"]
    assert [ax.get_title() for ax in visible] == [metric_label(m) for m in headline]
    linear = lesde.simulate(run.config.replace(signal="linear"), progress=False)
    shown = [ax.get_title() for ax in plot.metric_over_time(linear).axes if ax.get_visible()]
    assert shown == [metric_label("ncc_accuracy"), metric_label("nc1")]
    titles = {ax.get_title(): ax for ax in visible}
    assert titles["loss"].get_yscale() == "log"
    assert titles["accuracy (training labels)"].get_yscale() == "linear"
    assert all(ax.collections for ax in visible)  # quantile ribbons (3 replicas)


def test_metric_over_time_compares_runs_and_checks_names(run):
    fig = plot.metric_over_time({"a": run, "b": run}, names=("loss", "nc1", "accuracy"))
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 3
    assert fig.legends and [t.get_text() for t in fig.legends[0].get_texts()] == ["a", "b"]
    with pytest.raises(KeyError, match="did you mean 'loss'"):
        plot.metric_over_time(run, names=("los",))


def test_class_means_3d_draws_plane_and_trajectories(run):
    ax = plot.class_means_3d(run)
    assert hasattr(ax, "zaxis")
    assert any(c.get_gid() == "simplex_plane" for c in ax.collections)
    assert len(ax.get_lines()) >= 3
    with pytest.raises(IndexError):
        plot.class_means_3d(run, replica=7)


def test_class_means_3d_rejects_other_dimensions():
    res = lesde.simulate(signal="linear", dim=4, t_end=0.1, record_every=2, progress=False, **SMALL)
    with pytest.raises(ValueError, match="p = 4"):
        plot.class_means_3d(res)


def test_projection_over_time_needs_record_samples(run, phase_sweep):
    ax = plot.projection_over_time(run)
    assert isinstance(ax, mpl.axes.Axes)
    assert len(ax.collections) == 3  # one scatter per class
    n_points = sum(len(c.get_offsets()) for c in ax.collections)
    assert n_points == run.times.size * run.sample_indices.size
    ax2 = plot.projection_over_time(run, direction=[1.0, -1.0, 0.0], replica=1)
    assert "given direction" in ax2.get_ylabel()
    with pytest.raises(ValueError, match="length p = 3"):
        plot.projection_over_time(run, direction=[1.0, 0.0])
    plain = lesde.simulate(signal="linear", t_end=0.1, record_every=2, progress=False, **SMALL)
    with pytest.raises(ValueError, match="record_samples"):
        plot.projection_over_time(plain)


def test_impact_estimates():
    t = np.linspace(0.0, 2.0, 21)
    fig = plot.impact_estimates(t, 1.5 * t, 0.5 * t)
    assert isinstance(fig, mpl.figure.Figure) and len(fig.axes) == 1
    assert len(fig.axes[0].get_lines()) == 2
    fig = plot.impact_estimates(
        t,
        1.5 * t,
        0.5 * t,
        np.full_like(t, 1.5),
        np.full_like(t, 0.5),
        truth={"alpha": 1.5, "B": 0.5 * t},
    )
    assert len(fig.axes) == 2
    assert len(fig.axes[0].get_lines()) == 3 and len(fig.axes[1].get_lines()) == 3


def test_save_png_pdf_and_axes(tmp_path, phase_sweep):
    ax = plot.phase_diagram(phase_sweep)
    png = plot.save(ax, tmp_path / "sub" / "phase.png")
    pdf = plot.save(ax.figure, tmp_path / "phase.pdf")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert pdf.read_bytes()[:4] == b"%PDF"
    with pytest.raises(ValueError, match=".png, .pdf"):
        plot.save(ax, tmp_path / "phase.jpeg")
    with pytest.raises(TypeError):
        plot.save("not a figure", tmp_path / "x.png")


def test_replay_error_vs_trials_leaves_a_blown_up_replay_out():
    """One replay of 1e166 (the study's 'L, stepped' case) made the median of its size
    1e166 and stretched the axis over 160 decades, flattening every other point."""
    from lesde.plot.fits import replay_error_vs_trials

    errors = {"L": [[0.9, 0.8], [0.5, 1e166], [0.4, 0.41]], "I": [[0.7], [np.nan], [0.3]]}
    fig = replay_error_vs_trials([1, 4, 16], errors)
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert high < 10, f"the axis reaches {high:g}: the blown-up replay stretched it"
    median_L = next(line for line in ax.lines if line.get_label().startswith("L,"))
    np.testing.assert_allclose(median_L.get_ydata(), [0.85, 0.5, 0.405], err_msg="medians")
    labels = [line.get_label() for line in ax.lines]
    assert "L, 1 blew up (▲) (median)" in labels and "I, 1 blew up (▲) (median)" in labels, labels
    plt.close(fig)
