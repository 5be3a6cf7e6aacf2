"""What ``lesde run`` and ``lesde resume`` say and save at the end: the dry run's plan, the
result saved to ``--out`` (or what is kept when that fails), the final metrics, and how to
go on after Ctrl-C (the ``lesde resume`` command line).

Examples
--------
>>> import lesde
>>> from lesde.cli.report import steps_line
>>> res = lesde.simulate(n_classes=2, n_per_class=10, t_end=0.1, progress=False)
>>> steps_line(res)  # doctest: +ELLIPSIS
'10 steps in ... s'
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

import numpy as np

from .common import (
    EXIT_INTERRUPTED,
    EXIT_NUMERIC,
    EXIT_OK,
    PROG,
    Out,
    UsageError,
    print_json,
    summary_tables,
)
from .outputs import format_size

__all__ = [
    "MAX_FAILED_LINES",
    "finish_run",
    "numeric_failure",
    "print_plan",
    "resumed_line",
    "steps_line",
]


def print_plan(out: Out, args, cfg) -> int:
    """--dry-run: the resolved config, the size of the run and whether it fits in memory;
    nothing is run or written. Exit 2 when the run would not fit."""
    from ..io.storage import available_memory
    from ..sim.engine import InsufficientMemoryError, check_memory

    need, have = cfg.state_bytes(), available_memory()
    try:
        check_memory(cfg)
        refusal = None
    except InsufficientMemoryError as err:
        refusal = str(err)
    if args.json:
        print_json(
            {
                "dry_run": True,
                "config": cfg.to_dict(resolved=True),
                "n_samples": cfg.n_samples,
                "p": cfg.p,
                "n_steps": cfg.n_steps,
                "t_end": cfg.n_steps * cfg.dt,
                "n_records": cfg.n_records,
                "state_bytes": need,
                "memory_available": have,
                "fits_in_memory": refusal is None,
                "out": str(args.out),
                "zarr": None if args.zarr is None else str(args.zarr),
            }
        )
    else:
        out(cfg.to_toml(resolved=True).rstrip())
        memory = "" if have is None else f" of the {format_size(have)} available"
        out(
            f"# dry run: N = {cfg.n_samples}, p = {cfg.p}, {cfg.n_steps} steps to "
            f"t = {cfg.n_steps * cfg.dt:g}, {cfg.n_records} records, about "
            f"{format_size(need)} of state and records{memory}; would write {args.out}"
        )
    if refusal is not None:
        print(f"{PROG}: error: {refusal}", file=sys.stderr)
        return EXIT_NUMERIC
    return EXIT_OK


def _result_report(result, out_path: str | None) -> dict[str, Any]:
    cfg = result.config
    return {
        "ok": result.ok,
        "out": out_path,
        "summary": result.summary(),
        "status": [str(s) for s in result.status],
        "steps_done": result.steps_done,
        "steps_run": result.steps_done - result.meta.get("resumed_from_step", 0),
        "n_steps": cfg.n_steps,
        "failed": [{"replica": r, "step": step, "t": t} for r, step, t in result.failures()],
        "interrupted": result.interrupted,
        "wall_seconds": result.meta.get("wall_seconds"),
        "config": cfg.to_dict(resolved=True),
    }


#: Failed replicas listed one per line, up to this many (then a count).
MAX_FAILED_LINES = 5


def _print_result(out: Out, result) -> None:
    """The header, one line per failed replica, the metrics table, the steps and time.

    Every number is printed under the time of the record it comes from: the table holds
    the last record (its time in the header) of the replicas that are ok; a failed
    replica is said to have failed at its own time, and an interrupted run says where it
    stopped.
    """
    cfg = result.config
    R, ok = len(result.status), int(np.sum(result.status == "ok"))
    t_record = result.times[-1] if result.times.size else 0.0
    model = f"signal={cfg.signal}, K={cfg.n_classes}, N={cfg.n_samples}, p={cfg.p}"
    replicas = f"{R} replica(s)" if ok == R else f"the {ok} ok of {R} replica(s)"
    if result.interrupted:
        out(
            f"interrupted at t = {result.steps_done * cfg.dt:g} (step {result.steps_done} of "
            f"{cfg.n_steps}); metrics of its last record, t = {t_record:g}, over {replicas}, "
            f"{model}"
        )
    else:
        out(f"final metrics at t = {t_record:g} over {replicas}, {model}")
    failures = result.failures()
    for r, step, t in failures[:MAX_FAILED_LINES]:
        out(f"replica {r} failed at t = {t:g} (step {step}): its state or record became NaN/Inf")
    if len(failures) > MAX_FAILED_LINES:
        out(f"... and {len(failures) - MAX_FAILED_LINES} more failed replicas (see status)")
    out(summary_tables(result))
    out(steps_line(result))


def steps_line(result) -> str:
    """How many steps this command ran, and in how long (a resumed run ran only the rest)."""
    wall = result.meta.get("wall_seconds")
    line = f"{result.steps_done} steps" + ("" if wall is None else f" in {wall:.2f} s")
    start = result.meta.get("resumed_from_step")
    if start is None:
        return line
    ran = max(result.steps_done - start, 0)
    return f"{ran} steps run now (from step {start} to {result.steps_done}); {line} in all"


def _save(args, result) -> None:
    """Save ``result`` to ``--out``; when that fails, say what is kept (exit 1)."""
    from ..io.storage import NotReplacedError

    try:  # replaced: what was checked before the run (nothing else came meanwhile)
        result.save(args.out, overwrite=getattr(args, "replace_out", False))
    except OSError as err:  # e.g. a full disk: the write is atomic, so nothing is half-written
        raise UsageError(
            f"cannot write {args.out}: {err.strerror or err}; no file was replaced. "
            + _what_is_kept(args, result)
        ) from None
    except NotReplacedError as err:  # a file that came to --out during the run
        raise UsageError(f"{err}; it was left as it is. {_what_is_kept(args, result)}") from None


def _what_is_kept(args, result) -> str:
    checkpoint, step = getattr(args, "checkpoint", None), result.meta.get("checkpoint_step")
    if checkpoint is None or step is None:
        return "The run's result is lost (no checkpoint holds it)."
    command = _resume_command(args, result, "OTHER.npz")
    if step == result.config.n_steps:
        return f"Checkpoint {checkpoint} holds the finished run: `{command}` saves it."
    return f"Checkpoint {checkpoint} holds step {step}: `{command}` continues from there."


def numeric_failure(args, err) -> int:
    """Save the partial result of a NonFiniteError and report it (exit 2)."""
    result = err.result
    _save(args, result)
    print(f"{PROG}: error: numerical failure: {err}", file=sys.stderr)
    print(f"{PROG}: the partial result was saved to {args.out}", file=sys.stderr)
    if args.json:
        print_json({**_result_report(result, str(args.out)), "error": str(err)})
    return EXIT_NUMERIC


def finish_run(out: Out, args, result) -> int:
    """Save a finished (or interrupted) run and print its summary."""
    _save(args, result)
    if args.json:
        print_json(_result_report(result, str(args.out)))
    else:
        _print_result(out, result)
        out(f"wrote {args.out}")
    if result.interrupted:
        print(_interrupted_line(args, result), file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def _interrupted_line(args, result) -> str:
    """One line: where the run stopped, where its records are, how to go on."""
    n_steps = result.config.n_steps
    what = "result" if result.steps_done >= n_steps else "partial result"  # Ctrl-C at the end
    line = (
        f"{PROG}: interrupted at step {result.steps_done} of {n_steps}; the {what} was saved "
        f"to {args.out}"
    )
    checkpoint, step = args.checkpoint, result.meta.get("checkpoint_step")
    if checkpoint is None:
        return line + " (run with --checkpoint PATH to be able to resume)"
    if step is None:
        return line + f"; no checkpoint was written to {checkpoint}"
    return line + f"; continue from step {step} with: {_resume_command(args, result)}"


def _resume_command(args, result, out: str | None = None) -> str:
    """The command that finishes the run of ``result`` from ``--checkpoint``, saving to
    ``out``; a sharded run's on as many MPI ranks, always with --out (its checkpoint does
    not record it: by default the run's own --out)."""
    command = f"{PROG} resume {shlex.quote(str(args.checkpoint))}"
    ranks = result.meta.get("mpi_ranks")
    if ranks:
        out = str(args.out) if out is None else out
        return f"mpiexec -n {ranks} {command} --mpi --out {shlex.quote(out)}"
    return command if out is None else f"{command} --out {shlex.quote(out)}"


def resumed_line(checkpoint, result) -> str:
    """What resume did: continued from the checkpoint's step, or nothing (it was finished)."""
    start, n_steps = result.meta.get("resumed_from_step"), result.config.n_steps
    if start is not None and start >= n_steps:
        return (
            f"{checkpoint} holds a finished run (step {start} of {n_steps}): ran 0 steps, "
            "saving its result"
        )
    return f"resumed {checkpoint} from step {start}"
