"""The outcome of a sweep: one table row per (point, replica), and statistics per point.

:mod:`lesde.sweep` builds it and re-exports :class:`SweepResult`.

Examples
--------
>>> import pandas as pd
>>> from lesde.sweep.result import SweepResult
>>> table = pd.DataFrame({"point": [0, 0], "replica": [0, 1], "alpha": [1.0, 1.0],
...                       "status": ["ok", "ok"], "loss": [0.5, 0.7]})
>>> SweepResult(table, None, {"alpha": [1.0]}).summary()[["replicas_ok", "loss_mean"]]
       replicas_ok  loss_mean
point
0                2        0.6
"""

from __future__ import annotations

import difflib

import numpy as np

from ..io import storage
from ..sim.config import Config
from ..sim.result import HEADLINE_METRICS

__all__ = ["STATS", "SweepResult"]

#: The statistics :meth:`SweepResult.summary` gives of every metric, as column suffixes.
STATS = ("mean", "sem", "median", "q05", "q95", "count")
# Table columns that are identifiers or settings, not outcomes (excluded from summary()).
_ID_COLUMNS = ("point", "replica", "seed", "noise_seed", "status", "message", "t_end", "t_fail")


class SweepResult:
    """The outcome of :func:`sweep`: one table row per (point, replica).

    Attributes
    ----------
    table : pandas.DataFrame
        Columns ``point``, ``replica``, the grid fields, ``seed``, ``noise_seed``,
        ``status`` ("ok", "nonfinite" or "error"), ``message``, ``t_end`` (the run's
        horizon; a swept ``t_end`` column holds the requested value), ``t_fail`` (time of
        a non-finite failure, else NaN), the final value of every recorded metric,
        ``loss_tail_exponent`` and the ``separable_*`` columns. Rows are sorted by point,
        then replica. Metrics of a replica whose status is not "ok" are NaN.
    base : Config
        The base configuration.
    grid : dict
        Field name -> the list of values swept.
    meta : dict
        ``workers``, ``threads`` (per run), ``wall_seconds``, ``separability``.

    Examples
    --------
    >>> import lesde
    >>> base = lesde.Config(n_classes=2, n_per_class=10, signal="linear", t_end=0.2)
    >>> res = lesde.sweep(base, {"alpha": [0.5, 2.0]}, replicas=2, progress=False)
    >>> res
    SweepResult(points=2, rows=4, grid={alpha: 2}, status={'ok': 4})
    >>> res.points()
           alpha
    point
    0        0.5
    1        2.0
    """

    def __init__(self, table, base: Config, grid: dict[str, list], meta: dict | None = None):
        self.table = table
        self.base = base
        self.grid = grid
        self.meta = dict(meta or {})

    def __repr__(self) -> str:
        t = self.table
        status = t["status"].value_counts().to_dict() if len(t) else {}
        grid = ", ".join(f"{k}: {len(v)}" for k, v in self.grid.items())
        return (
            f"SweepResult(points={t['point'].nunique() if len(t) else 0}, rows={len(t)}, "
            f"grid={{{grid}}}, status={status})"
        )

    @property
    def metric_columns(self) -> list[str]:
        """The numeric outcome columns that :meth:`summary` describes.

        >>> _example().metric_columns
        ['loss']
        """
        import pandas as pd

        skip = set(_ID_COLUMNS) | set(self.grid)
        return [
            c
            for c in self.table.columns
            if c not in skip
            and pd.api.types.is_numeric_dtype(self.table[c])
            and not pd.api.types.is_bool_dtype(self.table[c])
        ]

    @property
    def headline(self) -> tuple[str, ...]:
        """The metrics that tell this sweep's story: those of its signal
        (:data:`lesde.sim.result.HEADLINE_METRICS`, what ``lesde run`` and ``lesde demo`` lead
        with; :attr:`lesde.Result.headline` of every point), in that order. A sweep over
        ``signal`` has those of each of its signals; columns missing from the table are
        left out.

        >>> import lesde
        >>> base = lesde.Config(n_classes=2, n_per_class=10, t_end=0.2)  # cross-entropy
        >>> lesde.sweep(base, {"alpha": [0.5, 2.0]}, progress=False).headline[:2]
        ('loss', 'accuracy')
        >>> lesde.sweep(base, {"signal": ["linear"]}, progress=False).headline
        ('separable_ncc', 'ncc_accuracy', 'nc1')
        """
        if "signal" in self.grid:
            signals = [str(s) for s in self.grid["signal"]]
        elif self.base is not None:
            signals = [self.base.signal]
        else:
            signals = []
        names = dict.fromkeys(m for s in signals for m in HEADLINE_METRICS.get(s, ()))
        return tuple(m for m in names if m in self.table.columns)

    def points(self):
        """One row per point: its grid values (index: ``point``).

        >>> _example().points().to_dict()
        {'alpha': {0: 1.0}}
        """
        cols = ["point", *self.grid]
        return self.table[cols].drop_duplicates("point").set_index("point")

    def summary(self, metrics=None):
        """Statistics over replicas, one row per point.

        For every numeric metric ``m`` (or those named in ``metrics``): ``m_mean``,
        ``m_sem`` (standard error, ``std(ddof=1) / sqrt(count)``), ``m_median``, ``m_q05``,
        ``m_q95`` (5% and 95% quantiles) and ``m_count`` (finite values: NaN rows from
        failed replicas are left out). Also ``replicas`` and ``replicas_ok`` per point.

        Returns
        -------
        pandas.DataFrame indexed by ``point``, with the grid columns first.

        Examples
        --------
        >>> s = _example().summary()  # two replicas, one of them failed
        >>> s[["replicas", "replicas_ok", "loss_mean", "loss_count"]].values.tolist()
        [[2.0, 1.0, 0.5, 1.0]]
        """
        import pandas as pd

        names = self.metric_columns if metrics is None else list(metrics)
        unknown = [m for m in names if m not in self.table.columns]
        if unknown:
            hint = difflib.get_close_matches(unknown[0], self.metric_columns, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            raise KeyError(f"no metric column {unknown[0]!r} in the sweep table{extra}")
        t = self.table
        g = t.groupby("point", sort=True)
        parts = [self.points()]
        counts = pd.DataFrame(
            {"replicas": g.size(), "replicas_ok": g["status"].agg(lambda s: int((s == "ok").sum()))}
        )
        parts.append(counts)
        if "t_end" in t.columns and "t_end" not in self.grid:
            parts.append(g[["t_end"]].first())
        if names:
            values = t[["point", *names]].astype({m: float for m in names})
            gv = values.groupby("point", sort=True)
            count = gv.count()
            stats = {
                "mean": gv.mean(),
                "sem": gv.std(ddof=1) / np.sqrt(count.where(count > 0)),
                "median": gv.median(),
                "q05": gv.quantile(0.05),
                "q95": gv.quantile(0.95),
                "count": count,
            }
            cols = {f"{m}_{s}": stats[s][m] for m in names for s in STATS}
            parts.append(pd.DataFrame(cols))
        return pd.concat(parts, axis=1)

    def to_csv(self, path, **kwargs) -> None:
        """Write the table as CSV (``kwargs`` go to :meth:`pandas.DataFrame.to_csv`).

        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "table.csv")
        >>> _example().to_csv(path)
        >>> open(path).readline().strip()
        'point,replica,alpha,status,loss'
        """
        self.table.to_csv(path, index=False, **kwargs)

    def to_parquet(self, path, **kwargs) -> None:
        """Write the table as Parquet, atomically (:func:`lesde.io.storage.atomic_write_parquet`;
        needs ``pip install 'lesde[parquet]'``). ``kwargs`` go to
        :meth:`pandas.DataFrame.to_parquet`.

        >>> import os, tempfile, pandas as pd
        >>> path = os.path.join(tempfile.mkdtemp(), "table.parquet")
        >>> _example().to_parquet(path)
        >>> pd.read_parquet(path).columns.tolist()
        ['point', 'replica', 'alpha', 'status', 'loss']
        """
        storage.atomic_write_parquet(path, self.table, **kwargs)


def _example() -> SweepResult:
    """A two-row sweep table for the examples above (one point, one failed replica)."""
    import pandas as pd

    table = pd.DataFrame(
        {
            "point": [0, 0],
            "replica": [0, 1],
            "alpha": [1.0, 1.0],
            "status": ["ok", "nonfinite"],
            "loss": [0.5, float("nan")],
        }
    )
    return SweepResult(table, None, {"alpha": [1.0]})
