"""``lesde info`` (how this lesde was built) and ``lesde bench`` (the benchmark suite,
:mod:`lesde.bench`).

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
import importlib.metadata
import importlib.util
import os
import sys
from typing import Any

import numpy as np

from .common import EXIT_OK, EXIT_USAGE, add_command, add_output_options, print_json

__all__ = [
    "OPTIONAL_PACKAGES",
    "add_bench",
    "add_info",
    "cmd_bench",
    "cmd_info",
    "cuda_status",
    "optional_packages",
    "simd_line",
]

# Every package an extra of pyproject.toml brings (or lesde uses when present), as
# (distribution, module to look for or None, extras, what lesde does with it).
# tests/test_cli.py checks this against pyproject.toml's optional dependencies.
OPTIONAL_PACKAGES = (
    ("matplotlib", "matplotlib", "core, plot", "figures"),
    ("pandas", "pandas", "core, sweep", "sweep tables"),
    ("pyarrow", "pyarrow", "parquet", "Parquet tables of runs and sweeps"),
    ("dask", "dask", "distributed", "sweeps on a Dask cluster"),
    ("distributed", "distributed", "distributed", "sweeps on a Dask cluster"),
    ("mpi4py", "mpi4py", "mpi", "MPI sweeps and sharded runs"),
    ("mpich", None, "mpi", "the MPI library from PyPI"),
    ("zarr", "zarr", "zarr", "records appended to a Zarr store"),
    ("torch", "torch", "nn, bench", "real networks; a benchmark baseline"),
    ("scikit-learn", "sklearn", "nn", "the 8 x 8 digits of lesde.data.digits (K = 10)"),
    ("jax", "jax", "bench", "a benchmark baseline"),
)


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


def optional_packages() -> dict[str, str | None]:
    """The installed version of every optional package (None when it is missing).

    Nothing is imported: the versions come from the installed distributions' metadata.

    >>> optional_packages()["matplotlib"] is not None  # a core dependency
    True
    """
    found = {}
    for dist, module, _, _ in OPTIONAL_PACKAGES:
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = None
        if module is not None and importlib.util.find_spec(module) is None:
            version = None
        elif module is not None and version is None:
            version = "installed"  # importable without metadata (e.g. a source tree)
        found[dist] = version
    return found


def cuda_status() -> dict[str, Any]:
    """Whether CUDA was built in, whether the emulator was, and which devices are visible.

    >>> sorted(cuda_status())
    ['built', 'device', 'devices_visible', 'emulator_built']
    """
    from .. import _core

    info = _core.build_info()
    devices = int(_core.cuda_device_count())
    device = None
    if devices > 0:
        d = _core.cuda_device_info()
        device = f"{d['name']} (sm {d['compute_capability']}, {d['total_memory'] / 2**30:.0f} GiB)"
    return {
        "built": bool(info.get("cuda_built", False)),
        "emulator_built": bool(info.get("cuda_emulator", False)),
        "devices_visible": devices,
        "device": device,
    }


def _cuda_line(cuda: dict[str, Any]) -> str:
    if not cuda["built"]:
        line = "not built (CPU-only core; docs/cuda.md)"
    elif cuda["devices_visible"]:
        line = f"built, {cuda['devices_visible']} device(s) visible: {cuda['device']}"
    else:
        line = "built, no device visible (driver? CUDA_VISIBLE_DEVICES?)"
    return line + ("; emulator built" if cuda["emulator_built"] else "")


def simd_line(build: dict[str, Any]) -> str:
    """What the core was compiled for and what this CPU runs: the module is compiled for
    the baseline (``simd``), and its hot kernels also carry an AVX2 version that is chosen
    when the module loads (``simd_dispatch``: ``"avx2"`` or ``"baseline"`` on this CPU;
    ``"none"`` when the build has no such versions, e.g. ``-march=native``).

    >>> simd_line({"simd": ["sse2"], "simd_dispatch": "avx2"})
    'compiled for sse2; this CPU runs the avx2 kernels (chosen at load time)'
    >>> simd_line({"simd": ["sse2", "avx", "avx2"], "simd_dispatch": "none"})
    'compiled for sse2, avx, avx2 (no runtime dispatch)'
    """
    compiled = ", ".join(build.get("simd", [])) or "no SIMD flags"
    dispatch = build.get("simd_dispatch", "none")
    if dispatch == "none":
        return f"compiled for {compiled} (no runtime dispatch)"
    return f"compiled for {compiled}; this CPU runs the {dispatch} kernels (chosen at load time)"


def _openmp_line(build: dict[str, Any]) -> str:
    if not build.get("openmp"):
        return "no (one thread)"
    return f"yes (version {build.get('openmp_version')}, {build.get('max_threads')} threads max)"


def _info() -> dict[str, Any]:
    from ..sim.config import Config
    from ..version import __version__, build_info

    info = build_info()
    cuda = cuda_status()
    return {
        "version": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "threads": Config().effective_threads,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cuda_built": cuda["built"],
        "cuda_emulator_built": cuda["emulator_built"],
        "cuda_devices_visible": cuda["devices_visible"],
        "cuda_device": cuda["device"],
        "random_stream_version": info.get("random_stream_version"),
        "optional": optional_packages(),
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
    assertions = "assertions on" if b.get("assertions") else "assertions off"
    rows = [
        ["version", info["version"]],
        ["python / numpy", f"{info['python']} / {info['numpy']}"],
        [
            "compiler",
            f"{b.get('compiler', '?')} (C++ {b.get('cxx_standard', '?')}, "
            f"{b.get('build_type', '?')}, {assertions})",
        ],
        ["eigen", b.get("eigen_version", "?")],
        ["openmp", _openmp_line(b)],
        ["simd", simd_line(b)],
        ["threads (default)", info["threads"]],
        ["OMP_NUM_THREADS", info["omp_num_threads"] or "unset"],
        ["CUDA", _cuda_line(cuda_status())],
        ["random-stream version", info["random_stream_version"]],
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    lines.append("optional packages:")
    for dist, _, extras, purpose in OPTIONAL_PACKAGES:
        version = info["optional"][dist] or "not installed"
        lines.append(f"  {dist:<12} {version:<14} {purpose} ({extras})")
    print("\n".join(lines))
    return EXIT_OK


# ---------------------------------------------------------------------------- bench
def add_bench(commands) -> None:
    """Register ``lesde bench`` on the subcommands ``commands``.

    ``lesde.cli.main`` hands everything after ``bench`` (``--help`` included) to
    :func:`cmd_bench` itself, since argparse would stop at the first option it does not
    know; this parser only lists the command.

    >>> from lesde.cli import build_parser
    >>> build_parser().parse_args(["bench", "out.json"]).bench_args
    ['out.json']
    """
    p = add_command(
        commands,
        "bench",
        cmd_bench,
        "time lesde against NumPy / PyTorch / JAX baselines",
        description="Run the benchmark suite (lesde.bench): lesde's step against NumPy, "
        "threaded NumPy, PyTorch and JAX baselines of the same problem, each checked "
        "against a float64 reference first, with the speed-up over NumPy of the same run.",
        epilog="Examples:\n  lesde bench --quick --out bench.json\n  lesde bench --smoke",
    )
    p.add_argument(
        "bench_args",
        nargs=argparse.REMAINDER,
        metavar="ARGS",
        help="the suite's options (lesde bench --help lists them)",
    )


def cmd_bench(args) -> int:
    """Run the benchmark suite :func:`lesde.bench.main` with ``args.bench_args``.

    >>> import argparse, contextlib, io
    >>> with contextlib.redirect_stdout(io.StringIO()) as text:
    ...     code = cmd_bench(argparse.Namespace(bench_args=["--help"]))
    >>> code, text.getvalue().startswith("usage: lesde bench")
    (0, True)
    """
    from ..bench import main as bench_main

    forwarded = list(args.bench_args)
    if forwarded[:1] == ["--"]:  # `lesde bench -- ARGS`, as documented before
        forwarded = forwarded[1:]
    try:
        return int(bench_main(forwarded))
    except SystemExit as done:  # argparse: --help, or a usage error (it printed why)
        code = done.code
        return code if isinstance(code, int) else EXIT_USAGE
