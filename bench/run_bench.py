"""The benchmark suite from a source checkout: ``python bench/run_bench.py ARGS`` is
``lesde bench ARGS`` (the suite is :mod:`lesde.bench`, part of the installed package).

    python bench/run_bench.py --quick --out bench_quick.json
    python bench/run_bench.py --smoke
    python bench/run_bench.py --N 1e5 1e6 --K 10 --signal linear --backends lesde numpy torch

A checkout whose compiled core is built in place (python/lesde/_core*) benchmarks its own
package; otherwise the installed lesde runs.
"""

import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "python"
# Only a compiled core counts: the checkout always has the stub _core.pyi, and a package
# without its extension must not shadow the installed one.
if any((SOURCE / "lesde" / f"_core{suffix}").exists() for suffix in EXTENSION_SUFFIXES):
    sys.path.insert(0, str(SOURCE))

from lesde.bench import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
