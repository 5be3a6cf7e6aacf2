"""What every ``lesde`` subcommand shares: exit codes, errors, the parser's look, output
helpers (JSON, tables, figures). Where the configuration comes from is
:mod:`lesde.cli.config`; the checks and locks of what a command writes are
:mod:`lesde.cli.outputs`.

Examples
--------
>>> print(table([["loss", 0.25], ["nc1", 1.5e-07]], ["metric", "value"]))
metric      value
------  ---------
loss         0.25
nc1     1.500e-07
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..sim.model import SIGNAL_INFO

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_NUMERIC",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROG",
    "SIGNAL_READING",
    "HelpFormatter",
    "Out",
    "Parser",
    "UsageError",
    "add_command",
    "add_output_options",
    "add_set_option",
    "config_fields_epilog",
    "os_error_line",
    "plain",
    "plot_module",
    "print_json",
    "progress_flag",
    "reader_went_away",
    "save_figure",
    "summary_tables",
    "table",
]

PROG = "lesde"
EXIT_OK, EXIT_USAGE, EXIT_NUMERIC, EXIT_INTERRUPTED = 0, 1, 2, 130
DISTRIBUTED_HINT = "pip install 'lesde[distributed]'"
ZARR_HINT = "pip install 'lesde[zarr]'"


class UsageError(Exception):
    """A mistake in the command line or the input files: exit 1 with a one-line message.

    >>> str(UsageError("config file 'x.toml' not found"))
    "config file 'x.toml' not found"
    """


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit with 1 (2 is kept for numerical failures).

    >>> Parser(prog="lesde").parse_args([])
    Namespace()
    """

    def error(self, message: str):  # noqa: D401 - argparse API
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{PROG}: error: {message}\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults; wrap prose paragraphs, keep indented blocks (examples) as written.

    >>> p = Parser(prog="x", formatter_class=HelpFormatter)
    >>> _ = p.add_argument("--out", default="run.npz", help="where to save")
    >>> _ = p.add_argument("--seed", type=int, default=0, help="the seed")
    >>> "(default: run.npz)" in p.format_help(), "(default: 0)" in p.format_help()
    (True, True)
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        # "(default: None)" and a flag's "(default: False)" say nothing; by identity, since
        # 0 == False: a default of 0 or 0.0 (--seed, --label-noise) is shown.
        if action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for para in text.split("\n\n"):
            lines = para.splitlines()
            if any(line.startswith("  ") for line in lines):
                paragraphs.append("\n".join(indent + line for line in lines))
            else:
                paragraphs.append(
                    textwrap.fill(
                        " ".join(para.split()),
                        width,
                        initial_indent=indent,
                        subsequent_indent=indent,
                    )
                )
        return "\n\n".join(paragraphs)


# ---------------------------------------------------------------------------- the parser
SET_HELP = (
    "override a Config field, KEY=VALUE with VALUE a TOML value (alpha=0.5, "
    'signal=linear, class_sizes=[10,20], \'alpha={kind="power_law",a0=1,tau=2,'
    "gamma=0.5}', alpha.tau=3); repeatable; wins over the file"
)


def add_command(commands, name, func, help, description=None, epilog=None):
    """Add subcommand ``name``, run by ``func(args) -> exit code``; return its parser.

    >>> commands = Parser(prog="lesde").add_subparsers(parser_class=Parser)
    >>> p = add_command(commands, "hello", lambda args: 0, "say hello")
    >>> p.parse_args([]).func(None)
    0
    """
    p = commands.add_parser(
        name,
        help=help,
        description=description or help,
        epilog=epilog,
        formatter_class=HelpFormatter,
    )
    p.set_defaults(func=func)
    return p


def add_output_options(p, quiet=True) -> None:
    """``--json`` (and ``--quiet`` unless ``quiet=False``) on the subcommand parser ``p``.

    >>> p = Parser(prog="x")
    >>> add_output_options(p)
    >>> p.parse_args(["--json"])
    Namespace(json=True, quiet=False)
    """
    p.add_argument(
        "--json",
        action="store_true",
        help="print a machine-readable JSON summary on stdout (nothing else)",
    )
    if quiet:
        p.add_argument("--quiet", action="store_true", help="no progress output")


def add_set_option(p) -> None:
    """The repeatable ``--set KEY=VALUE`` Config override on the subcommand parser ``p``.

    >>> p = Parser(prog="x")
    >>> add_set_option(p)
    >>> p.parse_args(["--set", "alpha=1", "--set", "beta=2"]).set
    ['alpha=1', 'beta=2']
    """
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)


def config_fields_epilog() -> str:
    """The help text that lists every Config field with its default.

    >>> print(config_fields_epilog().splitlines()[0])
    Config fields (set any with --set KEY=VALUE; docs/api.md explains them):
    """
    from ..sim.config import DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_N_PER_CLASS, DEFAULT_T_END, Config

    derived = {
        "n_per_class": f"{DEFAULT_N_PER_CLASS} (or class_sizes)",
        "class_sizes": "n_per_class for every class",
        "dim": "n_classes",
        "alpha": f"{DEFAULT_ALPHA}",
        "beta": f"{DEFAULT_BETA}",
        "impact": "alpha on the diagonal, beta off it",
        "init_means": "zeros",
        "head": "none: the features are the logits",
        "t_end": f"{DEFAULT_T_END} (or steps * dt)",
        "steps": "round(t_end / dt)",
        "noise_seed": "seed",
        "threads": "all cores available",
        "record_every": "n_steps // 100 (about 100 records)",
        "record_samples": "none",
    }
    lines = ["Config fields (set any with --set KEY=VALUE; docs/api.md explains them):"]
    for f in dataclasses.fields(Config):
        default = derived.get(f.name, repr(f.default))
        lines.append(f"  {f.name:<15} {default}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- output
def plain(value: Any) -> Any:
    """JSON-friendly builtins; NaN and infinities become None (strict JSON).

    >>> plain({"loss": np.float64(0.5), "nc1": float("nan"), "shape": np.array([2, 3])})
    {'loss': 0.5, 'nc1': None, 'shape': [2, 3]}
    """
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def print_json(data: Any) -> None:
    """Print ``data`` as one strict JSON document (see :func:`plain`).

    >>> print_json({"ok": True, "loss": float("inf")})
    {
      "ok": true,
      "loss": null
    }
    """
    print(json.dumps(plain(data), indent=2, allow_nan=False))


def _fmt(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain fixed-width table (first column left-aligned, the others right-aligned).

    >>> print(table([["a", 1.0], ["bb", float("nan")]], ["name", "x"]))
    name    x
    ----  ---
    a       1
    bb    nan
    """
    cells = [list(header)] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[j]) for r in cells) for j in range(len(header))]
    lines = []
    for i, row in enumerate(cells):
        pairs = enumerate(zip(row, widths, strict=True))
        parts = [c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in pairs]
        lines.append("  ".join(parts).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


#: How to read a run's headline metrics (Result.headline), per signal: docs/model.md, section 3
#: (from the one table of the signals, :data:`lesde.sim.model.SIGNAL_INFO`).
SIGNAL_READING = {name: info.reading for name, info in SIGNAL_INFO.items()}


def _metric_row(result, name: str) -> list[Any]:
    values = result.at_last_record(name)  # the record at the time the header names
    finite = values[np.isfinite(values)]
    if not finite.size:
        return [name, math.nan, math.nan, math.nan, math.nan]
    return [name, finite.mean(), finite.std(), finite.min(), finite.max()]


def summary_tables(result) -> str:
    """A run's metrics at its last record over the replicas that are ok: those that mean
    something for its signal (``result.headline``) first, with how to read them, then the
    others.

    >>> import lesde
    >>> res = lesde.simulate(n_classes=3, n_per_class=50, signal="linear", alpha=2.0,
    ...                      beta=0.5, t_end=20.0, progress=False)
    >>> print(summary_tables(res))  # doctest: +ELLIPSIS
    what the linear signal drives (docs/model.md, section 3):
    metric ...
    separable_ncc          1    0          1          1
    ncc_accuracy           1    0          1          1
    nc1 ...
      The linear signal separates the classes iff alpha > beta (separable_ncc -> 1) but
    ...
    other metrics:
    ...
    """
    header = ["metric", "mean", "std", "min", "max"]
    signal = result.config.signal
    others = [name for name in result.metrics if name not in result.headline]
    reading = textwrap.fill(SIGNAL_READING[signal], 88, initial_indent="  ", subsequent_indent="  ")
    return "\n".join(
        [
            f"what the {signal.replace('_', '-')} signal drives (docs/model.md, section 3):",
            table([_metric_row(result, name) for name in result.headline], header),
            reading,
            "other metrics:",
            table([_metric_row(result, name) for name in others], header),
        ]
    )


class Out:
    """Where human-readable lines go: stdout, or stderr when --json owns stdout.

    >>> Out()("printed on stdout")
    printed on stdout
    >>> Out(json_mode=True)("this goes to stderr")
    """

    def __init__(self, json_mode: bool = False):
        self.stream = sys.stderr if json_mode else sys.stdout

    def __call__(self, text: str = "") -> None:
        print(text, file=self.stream)


def reader_went_away() -> int:
    """After a BrokenPipeError on stdout (``lesde info | head -1``): exit status 0, quietly.

    The reader took what it wanted; that is not an error of lesde. stdout is pointed at
    the null device, so that Python's final flush at exit does not fail again (the recipe
    of the Python documentation, "Note on SIGPIPE"; it exits 1, we exit 0 as ``head``'s
    writers usually do when they ignore SIGPIPE).

    >>> import subprocess, sys
    >>> code = "from lesde.cli.common import reader_went_away; raise SystemExit(reader_went_away())"
    >>> subprocess.run([sys.executable, "-c", code], stdout=subprocess.DEVNULL).returncode
    0
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout without a file descriptor (tests, notebooks)
        pass
    return EXIT_OK


def progress_flag(args) -> bool | None:
    """--quiet: no bars; otherwise lesde's default (bars for slow runs), on terminals only.

    >>> progress_flag(argparse.Namespace(quiet=True))
    False
    """
    if getattr(args, "quiet", False) or not sys.stderr.isatty():
        return False
    return None


def plot_module():
    """lesde.plot with the non-interactive Agg backend (the CLI only writes files).

    >>> plot_module().__name__
    'lesde.plot'
    """
    import matplotlib

    matplotlib.use("Agg")
    from .. import plot

    return plot


def save_figure(plot, obj, path: Path) -> str:
    """Save the Figure of ``obj`` (a Figure or an Axes) to ``path``, close it; the path.

    >>> import os, tempfile
    >>> plot = plot_module()
    >>> path = os.path.join(tempfile.mkdtemp(), "empty.png")
    >>> save_figure(plot, plot.pyplot().figure(), path) == path
    True
    """
    import matplotlib.figure
    import matplotlib.pyplot as plt

    fig = obj
    if not isinstance(obj, matplotlib.figure.Figure):
        fig = getattr(obj, "figure", None) or getattr(obj, "get_figure", lambda: None)()
        if fig is None:
            raise TypeError(f"cannot find the figure of {type(obj).__name__}")
    plot.save(fig, path)
    plt.close(fig)
    return str(path)


# ---------------------------------------------------------------------------- errors
def os_error_line(err: OSError) -> str:
    """One line for an OSError: which file, and what the system said.

    >>> os_error_line(OSError(28, "No space left on device", "run.npz"))
    'run.npz: No space left on device'
    """
    what = err.strerror or str(err)
    return f"{err.filename}: {what}" if err.filename else what
