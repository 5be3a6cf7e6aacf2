"""``lesde run``, ``lesde resume`` and ``lesde validate``: one configuration at a time.

Examples
--------
>>> from lesde.cli import main
>>> main(["validate", "--set", "n_classes=2", "--set", "signal=linear"])  # doctest: +ELLIPSIS
n_classes = 2
signal = "linear"
alpha = 1.0
...
0
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..config import toml_value
from .common import (
    EXIT_INTERRUPTED,
    EXIT_NUMERIC,
    EXIT_OK,
    PROG,
    ZARR_HINT,
    Out,
    UsageError,
    add_command,
    add_output_options,
    add_set_option,
    check_output_file,
    check_output_folder,
    config_fields_epilog,
    load_config,
    print_json,
    progress_flag,
    summary_tables,
)

__all__ = ["add_resume", "add_run", "add_validate", "cmd_resume", "cmd_run", "cmd_validate"]

CHECKPOINT_EVERY_HELP = "steps between checkpoints (default: about every 60 s)"
MPI_HELP = (
    "shard the run over the MPI ranks this was started on (mpiexec -n RANKS lesde ... --mpi); "
    "each writes its part of a checkpoint, rank 0 saves the result (docs/distributed.md)"
)


# ---------------------------------------------------------------------------- run
def add_run(commands) -> None:
    """Register ``lesde run`` on the subcommands ``commands``.

    >>> from lesde.cli import build_parser
    >>> args = build_parser().parse_args(["run", "cfg.toml", "--set", "alpha=2", "--dry-run"])
    >>> args.func is cmd_run, args.config, args.set, args.out
    (True, 'cfg.toml', ['alpha=2'], 'run.npz')
    """
    p = add_command(
        commands,
        "run",
        cmd_run,
        "run one configuration and save the result (.npz)",
        description="Run one configuration (TOML file and/or --set overrides; precedence "
        "--set > file > defaults), print the final metrics averaged over "
        "replicas and save the result as .npz (read it with lesde.load).",
        epilog="Examples:\n  lesde run --set signal=linear --set alpha=2 --set beta=0.5\n"
        "  lesde run examples/configs/neural_collapse.toml --out nc.npz\n"
        '  lesde run cfg.toml --set \'alpha={kind="power_law",a0=1,tau=2,'
        "gamma=0.5}' --dry-run\n\n" + config_fields_epilog(),
    )
    p.add_argument("config", nargs="?", metavar="CONFIG.toml", help="TOML config file")
    add_set_option(p)
    p.add_argument("--out", default="run.npz", metavar="PATH", help="where to save the result")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and print the resolved config, the run's size and the memory it "
        "needs; run nothing (exit 2 when it would not fit in memory)",
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        metavar="PATH",
        help="write checkpoints here at record steps (resume with `lesde resume`)",
    )
    p.add_argument(
        "--checkpoint-every", type=int, default=None, metavar="STEPS", help=CHECKPOINT_EVERY_HELP
    )
    p.add_argument(
        "--zarr",
        default=None,
        metavar="PATH",
        help="also append the records to a Zarr store (a folder) while the run goes; "
        f"read it with lesde.load_zarr, even after a crash (needs {ZARR_HINT})",
    )
    p.add_argument("--mpi", action="store_true", help=MPI_HELP)
    add_output_options(p)


def cmd_run(args) -> int:
    """Run one configuration, save it to ``--out`` and print its final metrics.

    >>> from lesde.cli import main
    >>> main(["run", "--set", "n_classes=2", "--dry-run"])  # doctest: +ELLIPSIS
    n_classes = 2
    ...
    # dry run: N = 2000, p = 2, 1000 steps to t = 10, 101 records, about ... MiB of state ...
    0
    """
    from ..engine import check_memory
    from ..simulate import NonFiniteError, simulate

    out = Out(args.json)
    cfg, _ = load_config(args.config, args.set)
    if args.dry_run:
        return _print_plan(out, args, cfg)
    check_memory(cfg)  # what cannot run at all is said first
    _check_run_outputs(args, cfg)
    comm = _mpi_comm(args.mpi)
    try:
        result = simulate(
            cfg,
            progress=progress_flag(args),
            checkpoint=args.checkpoint,
            checkpoint_every=args.checkpoint_every,
            # so that `lesde resume CHECKPOINT` saves where this run would have (a sharded
            # run's manifest does not carry it: `lesde resume --mpi` takes --out)
            checkpoint_meta=None
            if args.checkpoint is None or comm is not None
            else {"out": _absolute(args.out)},
            zarr_store=args.zarr,
            comm=comm,
        )
    except NonFiniteError as err:
        return _numeric_failure(args, err) if _is_root(comm) else EXIT_NUMERIC
    if not _is_root(comm):  # rank 0 holds the gathered result, saves and reports it
        return EXIT_OK
    code = _finish_run(out, args, result)
    if args.zarr is not None:
        out(f"wrote {args.zarr} (Zarr store; records also appended while running)")
    return code


def _absolute(path: str | os.PathLike) -> str:
    return os.path.abspath(os.fspath(path))


def _check_run_outputs(args, cfg) -> None:
    """Every file and folder the run will write, checked before it starts."""
    check_output_file(args.out, "--out")
    _warn_if_short_of_space(args.out, cfg.state_bytes(), "--out")
    if args.checkpoint is not None:
        check_output_file(args.checkpoint, "--checkpoint")
        if _absolute(args.checkpoint) == _absolute(args.out):
            raise UsageError(
                f"--out and --checkpoint are the same file ({args.out}); give two paths"
            )
    if args.zarr is not None:
        check_output_folder(args.zarr, "--zarr")


def _warn_if_short_of_space(path: str | os.PathLike, need: int, option: str) -> None:
    """A warning, not an error: the estimate is the state's size, close to the file's."""
    folder = Path(_absolute(path)).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < need:
        warnings.warn(
            f"{option} {path}: {_size(free)} free on its file system, and the result needs "
            f"about {_size(need)}",
            RuntimeWarning,
            stacklevel=2,
        )


def _size(n_bytes: float) -> str:
    """``n_bytes`` in MiB, or GiB from 1 GiB on."""
    return f"{n_bytes / 2**30:.2f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.1f} MiB"


def _print_plan(out: Out, args, cfg) -> int:
    """--dry-run: the resolved config, the size of the run and whether it fits in memory;
    nothing is run or written. Exit 2 when the run would not fit."""
    from ..engine import InsufficientMemoryError, check_memory
    from ..storage import available_memory

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
        memory = "" if have is None else f" of the {_size(have)} available"
        out(
            f"# dry run: N = {cfg.n_samples}, p = {cfg.p}, {cfg.n_steps} steps to "
            f"t = {cfg.n_steps * cfg.dt:g}, {cfg.n_records} records, about "
            f"{_size(need)} of state and records{memory}; would write {args.out}"
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
    out(_steps_line(result))


def _steps_line(result) -> str:
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
    try:
        result.save(args.out)
    except OSError as err:  # e.g. a full disk: the write is atomic, so nothing is half-written
        raise UsageError(
            f"cannot write {args.out}: {err.strerror or err}; no file was replaced. "
            + _what_is_kept(args, result)
        ) from None


def _what_is_kept(args, result) -> str:
    checkpoint, step = getattr(args, "checkpoint", None), result.meta.get("checkpoint_step")
    if checkpoint is None or step is None:
        return "The run's result is lost (no checkpoint holds it)."
    command = f"{PROG} resume {shlex.quote(str(checkpoint))} --out OTHER.npz"
    if step == result.config.n_steps:
        return f"Checkpoint {checkpoint} holds the finished run: `{command}` saves it."
    return f"Checkpoint {checkpoint} holds step {step}: `{command}` continues from there."


def _numeric_failure(args, err) -> int:
    """Save the partial result of a NonFiniteError and report it (exit 2)."""
    result = err.result
    _save(args, result)
    print(f"{PROG}: error: numerical failure: {err}", file=sys.stderr)
    print(f"{PROG}: the partial result was saved to {args.out}", file=sys.stderr)
    if args.json:
        print_json({**_result_report(result, str(args.out)), "error": str(err)})
    return EXIT_NUMERIC


def _finish_run(out: Out, args, result) -> int:
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
    return line + f"; continue from step {step} with: {PROG} resume {shlex.quote(str(checkpoint))}"


# ---------------------------------------------------------------------------- resume
def add_resume(commands) -> None:
    """Register ``lesde resume`` on the subcommands ``commands``.

    >>> from lesde.cli import build_parser
    >>> build_parser().parse_args(["resume", "run.ckpt"]).checkpoint
    'run.ckpt'
    """
    p = add_command(
        commands,
        "resume",
        cmd_resume,
        "continue a checkpointed run to its end",
        description="Continue a run written by `lesde run --checkpoint PATH` (or "
        "lesde.simulate(checkpoint=...)) that was stopped or killed. The result "
        "is bit-identical to an uninterrupted run and is saved where that run would have "
        "saved it (its --out); the checkpoint keeps being updated, as often as before. "
        "A damaged or incompatible checkpoint is refused (exit 1).",
        epilog="Example:\n  lesde run cfg.toml --checkpoint run.ckpt --out run.npz\n"
        "  (Ctrl-C, or killed)\n  lesde resume run.ckpt",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint file")
    p.add_argument(
        "--out",
        default=None,
        metavar="PATH",
        help="where to save the result (default: the --out of the `lesde run` that wrote the "
        "checkpoint; required for checkpoints written by lesde.simulate)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace a file at the output path that is not a result of this run",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        metavar="STEPS",
        help="steps between checkpoints (default: as in the run that wrote the checkpoint)",
    )
    p.add_argument("--mpi", action="store_true", help=MPI_HELP)
    add_output_options(p)


def cmd_resume(args) -> int:
    """Continue a checkpointed run to its end, then save and report it as ``lesde run`` does.

    >>> from lesde.cli import main
    >>> main(["resume", "no-such.ckpt"])  # the message goes to stderr
    1
    """
    from ..checkpoint import read_checkpoint, resume
    from ..simulate import NonFiniteError

    out = Out(args.json)
    if not Path(args.checkpoint).is_file():
        raise UsageError(f"no checkpoint file {args.checkpoint}")
    comm = _mpi_comm(args.mpi)
    try:
        if comm is None:
            result = _resume_one_process(args, read_checkpoint, resume)
        else:
            from ..mpi import resume_sharded

            if args.out is None:
                raise UsageError("--mpi: give --out PATH (a sharded checkpoint does not record it)")
            if _is_root(comm):
                check_output_file(args.out, "--out")
            result = resume_sharded(
                args.checkpoint,
                comm,
                progress=progress_flag(args),
                checkpoint_every=args.checkpoint_every,
            )
    except NonFiniteError as err:
        return _numeric_failure(args, err) if _is_root(comm) else EXIT_NUMERIC
    if not _is_root(comm):
        return EXIT_OK
    out(_resumed_line(args.checkpoint, result))
    return _finish_run(out, args, result)


def _resumed_line(checkpoint, result) -> str:
    """What resume did: continued from the checkpoint's step, or nothing (it was finished)."""
    start, n_steps = result.meta.get("resumed_from_step"), result.config.n_steps
    if start is not None and start >= n_steps:
        return (
            f"{checkpoint} holds a finished run (step {start} of {n_steps}): ran 0 steps, "
            "saving its result"
        )
    return f"resumed {checkpoint} from step {start}"


def _mpi_comm(mpi: bool):
    """``--mpi``: MPI.COMM_WORLD when it has more than one rank (else None: one process)."""
    if not mpi:
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        raise UsageError("--mpi needs mpi4py: pip install 'lesde[mpi]'") from None
    return MPI.COMM_WORLD if MPI.COMM_WORLD.Get_size() > 1 else None


def _is_root(comm) -> bool:
    return comm is None or comm.Get_rank() == 0


def _refuse_to_replace_another_file(args, cfg) -> None:
    """Resume may replace the result of its own run (the partial result an interrupted
    ``lesde run`` saved), nothing else unless --force."""
    if args.force or not os.path.lexists(args.out) or _result_config(args.out) == cfg:
        return
    raise UsageError(
        f"--out {args.out} exists and is not a result of this run; give --force to replace "
        "it, or another --out"
    )


def _result_config(path: str | os.PathLike):
    """The config in the header of the lesde result file at ``path`` (only the header
    member is read), or None when it is not one."""
    from ..config import Config

    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"][()]))
        return Config.from_toml_text(header["config_toml"])
    except Exception:  # not a readable lesde result: another file
        return None


def _resume_one_process(args, read_checkpoint, resume):
    """The checkpoint's run to its end, saving where the run would have (or --out)."""
    ckpt = read_checkpoint(args.checkpoint)
    if args.out is None:
        args.out = ckpt.meta.get("out")
        if not isinstance(args.out, str):
            raise UsageError(
                f"{args.checkpoint} does not say where its result goes (it was not written by "
                "`lesde run`): give --out PATH"
            )
    check_output_file(args.checkpoint, "the checkpoint")  # it keeps being rewritten
    check_output_file(args.out, "--out")
    _refuse_to_replace_another_file(args, ckpt.config)
    return resume(
        ckpt,
        progress=progress_flag(args),
        checkpoint_every=args.checkpoint_every,
        checkpoint_meta={**ckpt.meta, "out": _absolute(args.out)},
    )


# ---------------------------------------------------------------------------- validate
def add_validate(commands) -> None:
    """Register ``lesde validate`` on the subcommands ``commands``.

    >>> from lesde.cli import build_parser
    >>> build_parser().parse_args(["validate", "--json"]).json
    True
    """
    p = add_command(
        commands,
        "validate",
        cmd_validate,
        "check a config and print it fully resolved (TOML)",
        description="Validate CONFIG.toml (and --set overrides) and print the resolved "
        "config with every default filled in; a [grid] table is checked and "
        "printed expanded. Exit 0 when valid, 1 otherwise.",
        epilog="Example:\n  lesde validate examples/configs/phase_diagram.toml "
        "--set sigma=0.1\n\n" + config_fields_epilog(),
    )
    p.add_argument("config", nargs="?", metavar="CONFIG.toml", help="TOML config file")
    add_set_option(p)
    add_output_options(p, quiet=False)


def cmd_validate(args) -> int:
    """Print the resolved config (and its expanded ``[grid]``), as TOML or JSON.

    >>> from lesde.cli import main
    >>> main(["validate", "--set", "n_classes=2", "--json"])  # doctest: +ELLIPSIS
    {
      "config": {
        "n_classes": 2,
    ...
      "grid": null
    }
    0
    """
    from ..grid import expand_grid

    cfg, grid = load_config(args.config, args.set, allow_grid=True)
    if grid is not None:
        try:
            grid = expand_grid(grid)
        except (TypeError, ValueError) as err:
            raise UsageError(f"{args.config}: {err}") from None
    if args.json:
        print_json({"config": cfg.to_dict(resolved=True), "grid": grid})
    else:
        text = cfg.to_toml(resolved=True)
        if grid is not None:
            text += "\n[grid]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in grid.items())
        sys.stdout.write(text)
    return EXIT_OK
