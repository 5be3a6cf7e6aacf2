"""The ``lesde`` command line: demo, run, sweep, plot, validate, info, bench, resume, nn.

Every subcommand is a small function ``cmd_<name>(args) -> int`` over the Python API, in
the module of its family, next to the ``add_<name>(commands)`` function that registers its
parser:

- :mod:`lesde.cli.run`: ``run``, ``resume``, ``validate`` (one configuration);
- :mod:`lesde.cli.sweep`: ``sweep``, ``demo`` (grids, through :func:`lesde.sweep.sweep`);
- :mod:`lesde.cli.plot`: ``plot``;
- :mod:`lesde.cli.info`: ``info``, ``bench``;
- :mod:`lesde.cli.nn`: ``nn train``, ``nn paper`` (trial ensembles of real networks);
- :mod:`lesde.cli.common`: what they share (exit codes, errors, output, configuration).

This module assembles the parser and runs a command, turning errors into exit codes.

Conventions (docs/cli.md):

- configuration precedence: ``--set key=value`` > the TOML file > the Config defaults;
  ``--set`` values are parsed as TOML values (``alpha=0.5``, ``class_sizes=[10,20]``,
  ``alpha={kind="power_law",a0=1,tau=2,gamma=0.5}``), falling back to a bare string
  (``signal=linear``); strings are never evaluated;
- ``--json`` prints one JSON document on stdout and nothing else there (NaN -> null);
- ``--quiet`` turns progress bars off;
- exit codes: 0 ok, 1 usage, configuration or file error (one line on stderr, no
  traceback), 2 the run failed or cannot run (a replica became NaN/Inf: the partial result
  is still saved; or it does not fit in memory), 130 interrupted (Ctrl-C; the partial
  result is saved);
- warnings are one ``lesde: warning: ...`` line each (``LESDE_DEBUG=1``: Python's format).

Examples
--------
>>> main(["validate", "--set", "n_classes=2", "--set", "signal=linear", "--json"])
... # doctest: +ELLIPSIS
{
  "config": {
    "n_classes": 2,
...
0
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from . import info, nn, plot, run, sweep
from .common import (
    EXIT_INTERRUPTED,
    EXIT_NUMERIC,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    HelpFormatter,
    Parser,
    UsageError,
    os_error_line,
    reader_went_away,
)
from .config import load_config, parse_set
from .sweep import demo_setup

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_NUMERIC",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "build_parser",
    "demo_setup",
    "load_config",
    "main",
    "parse_set",
]

# The order of `lesde --help`.
SUBCOMMANDS = (
    sweep.add_demo,
    run.add_run,
    sweep.add_sweep,
    plot.add_plot,
    info.add_bench,
    run.add_resume,
    run.add_validate,
    info.add_info,
    nn.add_nn,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``lesde`` parser: the top-level options and every subcommand.

    Examples
    --------
    >>> args = build_parser().parse_args(["run", "--set", "alpha=2", "--quiet"])
    >>> args.set, args.quiet, args.func.__name__
    (['alpha=2'], True, 'cmd_run')
    """
    from ..version import __version__

    parser = Parser(
        prog=PROG,
        formatter_class=HelpFormatter,
        description="Simulate locally elastic SDEs (Zhang, Wang & Su, NeurIPS 2021): the "
        "features of N training samples, coupled through a K x K impact matrix.",
        epilog="Exit codes: 0 ok, 1 usage, configuration or file error, 2 the run failed "
        "(NaN/Inf; the partial result is still saved) or does not fit in memory, "
        "130 interrupted.\n\n"
        "Start with `lesde demo --quick`; `lesde COMMAND --help` for each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for add in SUBCOMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``lesde`` and ``python -m lesde``; returns the exit status.

    Examples
    --------
    >>> main(["validate", "--set", "n_classes=2"])  # doctest: +ELLIPSIS
    n_classes = 2
    ...
    0
    >>> main(["validate", "--set", "sigma=-1"])  # one line on stderr, no traceback
    1
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv[:1] == ["bench"]:
        # Everything after "bench" belongs to the suite, options and --help included
        # (argparse's REMAINDER would stop at an option such as --quick).
        args = argparse.Namespace(func=info.cmd_bench, bench_args=argv[1:])
    else:
        args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        print(f"{PROG}: error: a command is required", file=sys.stderr)
        return EXIT_USAGE
    with warnings.catch_warnings():
        if not os.environ.get("LESDE_DEBUG"):
            warnings.showwarning = _one_line_warning
        return _run_command(args)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr if file is None else file)


def _run_command(args) -> int:
    """Run the chosen command; every error becomes one line on stderr and an exit code."""
    from ..io.storage import InUseError
    from ..sim.engine import BackendUnavailableError, InsufficientMemoryError, RunInterruptedWarning

    # The commands report an interrupt themselves, in one line with what to do next.
    warnings.simplefilter("ignore", RunInterruptedWarning)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a reader that went away shows here, not at interpreter exit
        return code
    except (UsageError, InUseError, BackendUnavailableError) as err:  # a folder/file in use
        print(f"{PROG}: error: {err}", file=sys.stderr)
    except InsufficientMemoryError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return EXIT_NUMERIC
    except RecursionError:  # a file nested thousands of levels deep (e.g. a JSON header)
        if os.environ.get("LESDE_DEBUG"):
            raise
        print(f"{PROG}: error: the input is nested too deeply to be read", file=sys.stderr)
    except (TypeError, ValueError) as err:
        # Validation errors not wrapped above (e.g. the engine's own checks). Show the
        # traceback only on request, so users see one line and developers can still debug.
        if os.environ.get("LESDE_DEBUG"):
            raise
        print(f"{PROG}: error: {err} (set LESDE_DEBUG=1 for the traceback)", file=sys.stderr)
    except ImportError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
    except BrokenPipeError:  # the reader stopped reading, e.g. `lesde info | head -1`
        return reader_went_away()
    except OSError as err:  # a missing file, a full disk, a read-only file system
        if os.environ.get("LESDE_DEBUG"):
            raise
        print(f"{PROG}: error: {os_error_line(err)}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_USAGE
