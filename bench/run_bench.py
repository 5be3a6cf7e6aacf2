"""The benchmark suite from a source checkout: ``python bench/run_bench.py ARGS`` is
``lesde bench ARGS`` (the suite is :mod:`lesde.bench`, part of the installed package).

    python bench/run_bench.py --quick --out bench_quick.json
    python bench/run_bench.py --smoke
    python bench/run_bench.py --N 1e5 1e6 --K 10 --signal linear --backends lesde numpy torch

A checkout whose compiled core is built in place (python/lesde/_core*) benchmarks its own
package; otherwise the installed lesde runs.
"""

import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "python"
if any((SOURCE / "lesde").glob("_core*")):
    sys.path.insert(0, str(SOURCE))

from lesde.bench import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
