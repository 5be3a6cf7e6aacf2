"""``lesde info`` (how this lesde was built) and ``lesde bench`` (the benchmark suite).

Examples
--------
>>> from lesde.cli import main
>>> main(["info"])  # doctest: +ELLIPSIS
version ...
...random-stream version...
0
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .common import EXIT_OK, EXIT_USAGE, PROG, add_command, add_output_options, print_json

__all__ = ["add_bench", "add_info", "cmd_bench", "cmd_info"]

# Extras that `lesde info` reports as installed or not (the core dependencies always are).
OPTIONAL_PACKAGES = ("pyarrow", "distributed", "zarr", "mpi4py", "torch")
# python/lesde: the package folder, whatever this module's place inside it.
PACKAGE_DIR = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- info
def add_info(commands) -> None:
    """Register ``lesde info`` on the subcommands ``commands``.

    >>> from lesde.cli import build_parser
    >>> build_parser().parse_args(["info", "--json"]).func is cmd_info
    True
    """
    p = add_command(
        commands,
        "info",
        cmd_info,
        "version, build flags, threads, CUDA, random-stream version",
        description="Print the version, how the compiled core was built, the default "
        "thread count, CUDA availability and the random-stream version.",
    )
    add_output_options(p, quiet=False)


def _info() -> dict[str, Any]:
    from ..config import Config
    from ..version import __version__, build_info

    info = build_info()
    return {
        "version": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "threads": Config().effective_threads,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cuda_built": bool(info.get("cuda_built", False)),
        "cuda_device_visible": bool(info.get("cuda_device_visible", False)),
        "random_stream_version": info.get("random_stream_version"),
        "optional": {m: importlib.util.find_spec(m) is not None for m in OPTIONAL_PACKAGES},
        "build_info": info,
    }


def cmd_info(args) -> int:
    """Print the version, the build, threads, CUDA and the random-stream version.

    >>> from lesde.cli import main
    >>> main(["info", "--json"])  # doctest: +ELLIPSIS
    {
      "version": ...
    }
    0
    """
    info = _info()
    if args.json:
        print_json(info)
        return EXIT_OK
    b = info["build_info"]
    rows = [
        ["version", info["version"]],
        ["python / numpy", f"{info['python']} / {info['numpy']}"],
        [
            "compiler",
            f"{b.get('compiler', '?')} (C++ {b.get('cxx_standard', '?')}, "
            f"{b.get('build_type', '?')})",
        ],
        ["openmp", b.get("openmp")],
        ["simd", ", ".join(b.get("simd", [])) or "none"],
        ["threads (default)", info["threads"]],
        ["OMP_NUM_THREADS", info["omp_num_threads"] or "unset"],
        ["CUDA built", info["cuda_built"]],
        ["CUDA device visible", info["cuda_device_visible"]],
        ["random-stream version", info["random_stream_version"]],
        [
            "optional packages",
            ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in info["optional"].items()),
        ],
    ]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    return EXIT_OK


# ---------------------------------------------------------------------------- bench
def add_bench(commands) -> None:
    """Register ``lesde bench`` on the subcommands ``commands``.

    ``lesde.cli.main`` hands everything after ``bench`` to :func:`cmd_bench` itself, since
    argparse would stop at the first option it does not know; this parser serves ``--help``.

    >>> from lesde.cli import build_parser
    >>> build_parser().parse_args(["bench", "out.json"]).bench_args
    ['out.json']
    """
    p = add_command(
        commands,
        "bench",
        cmd_bench,
        "run the benchmark suite (source checkouts)",
        description="Forward the remaining arguments to the benchmark suite "
        "(bench/run_bench.py in a source checkout).",
        epilog="Examples:\n  lesde bench --quick --out bench.json\n"
        "  lesde bench -- --help      (the suite's own options)",
    )
    p.add_argument(
        "bench_args",
        nargs=argparse.REMAINDER,
        metavar="ARGS",
        help="arguments for the benchmark suite (see lesde bench --help there)",
    )


def _source_bench_script() -> Path | None:
    script = PACKAGE_DIR.parents[1] / "bench" / "run_bench.py"  # python/lesde -> the checkout
    return script if script.is_file() else None


def cmd_bench(args) -> int:
    """Run the benchmark suite with ``args.bench_args``; its exit status.

    The suite is the ``lesde.bench`` module when installed, else ``bench/run_bench.py`` of
    a source checkout (run in a fresh Python that imports this lesde); without either it
    says so and returns 1.

    >>> import argparse, contextlib, io
    >>> with contextlib.redirect_stderr(io.StringIO()):  # the suite's help, or why not
    ...     code = cmd_bench(argparse.Namespace(bench_args=["--", "--help"]))
    >>> code in (0, 1)
    True
    """
    forwarded = list(args.bench_args)
    if forwarded[:1] == ["--"]:
        forwarded = forwarded[1:]
    try:
        module = importlib.import_module("lesde.bench")
    except ModuleNotFoundError as err:
        if err.name not in ("lesde.bench",):
            raise
        module = None
    if module is not None and hasattr(module, "main"):
        return int(module.main(forwarded) or 0)
    script = _source_bench_script()
    if script is None:
        print(
            f"{PROG}: error: the benchmark suite is not part of this installation; run "
            "bench/run_bench.py from a source checkout of lesde",
            file=sys.stderr,
        )
        return EXIT_USAGE
    env = dict(os.environ)
    path = [str(PACKAGE_DIR.parent), env.get("PYTHONPATH")]  # this lesde first
    env["PYTHONPATH"] = os.pathsep.join(filter(None, path))
    return subprocess.call([sys.executable, str(script), *forwarded], env=env)
