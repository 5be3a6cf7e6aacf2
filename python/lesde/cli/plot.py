"""``lesde plot``: figures of a saved result.

Examples
--------
>>> from lesde.cli import build_parser
>>> args = build_parser().parse_args(["plot", "run.npz", "--out", "figs"])
>>> args.func is cmd_plot, args.result, args.out
(True, 'run.npz', 'figs')
"""

from __future__ import annotations

import os
from pathlib import Path

from .common import (
    EXIT_OK,
    UsageError,
    add_command,
    plot_module,
    save_figure,
)
from .outputs import check_apart, check_output_file

__all__ = ["add_plot", "cmd_plot"]


def add_plot(commands) -> None:
    """Register ``lesde plot`` on the subcommands ``commands``.

    >>> from lesde.cli import build_parser
    >>> build_parser().parse_args(["plot", "run.npz"]).out  # never the current folder itself
    'lesde-plots'
    """
    p = add_command(
        commands,
        "plot",
        cmd_plot,
        "draw figures from a saved result (.npz)",
        description="Draw the metrics over time of a saved result, and the class means in "
        "3-D when p = 3.",
        epilog="Example:\n  lesde run --out run.npz && lesde plot run.npz --out figs",
    )
    p.add_argument("result", metavar="RESULT.npz", help="a file written by lesde run")
    p.add_argument(
        "--out",
        default="lesde-plots",
        metavar="DIR",
        help="folder for the PNG files (a figure there is replaced only if lesde drew it)",
    )


def cmd_plot(args) -> int:
    """Write ``<name>-metric_over_time.png`` (and ``<name>-class_means_3d.png`` when p = 3).

    >>> import os, tempfile
    >>> import lesde
    >>> from lesde.cli import main
    >>> folder = tempfile.mkdtemp()
    >>> res = lesde.simulate(n_classes=3, n_per_class=10, t_end=0.2, progress=False)
    >>> res.save(os.path.join(folder, "r.npz"))
    >>> main(["plot", os.path.join(folder, "r.npz"), "--out", folder])  # doctest: +ELLIPSIS
    wrote .../r-metric_over_time.png
    wrote .../r-class_means_3d.png
    0
    """
    from ..sim.result import load

    path = Path(args.result)
    if not os.path.lexists(path):
        raise UsageError(f"result file {str(path)!r} not found")
    try:
        result = load(path)
    except (ValueError, KeyError, OSError) as err:
        raise UsageError(str(err)) from None
    plot = plot_module()
    outdir = Path(args.out)
    names = ["metric_over_time"] + (["class_means_3d"] if result.config.p == 3 else [])
    targets = {name: outdir / f"{path.stem}-{name}.png" for name in names}
    for target in targets.values():  # all of them, before any is drawn
        _check_figure_path(plot, target, path)
    outdir.mkdir(parents=True, exist_ok=True)
    figures = {"metric_over_time": plot.metric_over_time}
    figures["class_means_3d"] = plot.class_means_3d
    for name, target in targets.items():
        print(f"wrote {save_figure(plot, figures[name](result), target)}")
    return EXIT_OK


def _check_figure_path(plot, target: Path, source: Path) -> None:
    """A figure replaces only a figure lesde drew (never the user's file, nor the input)."""
    check_output_file(target, "--out")
    check_apart({"the figure": target}, inputs={"RESULT.npz": source})
    if os.path.lexists(target) and not plot.drawn_by_lesde(target):
        raise UsageError(
            f"--out: {str(target)!r} exists and is not a figure lesde drew; lesde never "
            "replaces a file it did not write: move it away or choose another --out"
        )
