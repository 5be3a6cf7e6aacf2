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

import contextlib
import functools
import os
import shlex
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..sim.collective import AgreedError, counting_interrupts, interrupt_count
from ..sim.config import toml_value
from ..sim.engine import InsufficientMemoryError
from .common import (
    EXIT_INTERRUPTED,
    EXIT_NUMERIC,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    ZARR_HINT,
    Out,
    UsageError,
    add_command,
    add_output_options,
    add_set_option,
    check_apart,
    check_output_file,
    check_output_folder,
    config_fields_epilog,
    hold_lock,
    load_config,
    print_json,
    progress_flag,
    summary_tables,
)

__all__ = ["add_resume", "add_run", "add_validate", "cmd_resume", "cmd_run", "cmd_validate"]

CHECKPOINT_EVERY_HELP = "steps between checkpoints (default: about every 60 s)"
RUN_FORCE_HELP = (
    "replace what an earlier lesde run left at the output paths: a result at --out, a "
    "checkpoint at --checkpoint, a Zarr store at --zarr (files lesde did not write are "
    "never replaced)"
)
MPI_HELP = (
    "shard the run over the MPI ranks this was started on (mpiexec -n RANKS lesde ... --mpi); "
    "each writes its part of a checkpoint, rank 0 saves the result (docs/distributed.md)"
)


def _on_ranks(command):
    """A command that ``--mpi`` runs on every rank of MPI.COMM_WORLD. Ctrl-C is counted
    there, not raised, while the ranks work together (lesde.sim.collective: they stop together),
    and an error that every rank raises together (agreed, or Ctrl-C before the run) is
    printed once, by rank 0: the other ranks exit with its code, quietly."""

    @functools.wraps(command)
    def on_ranks(args) -> int:
        if not args.mpi:
            return command(args)
        with counting_interrupts():  # from before MPI starts: no rank may leave alone
            comm = _mpi_comm(True)
            if comm is not None:
                try:
                    return command(args)
                except (AgreedError, KeyboardInterrupt) as err:
                    if comm.Get_rank() == 0:
                        raise
                    if isinstance(err, KeyboardInterrupt):
                        return EXIT_INTERRUPTED
                    return EXIT_NUMERIC if isinstance(err, InsufficientMemoryError) else EXIT_USAGE
            pressed = interrupt_count()
        if pressed:  # one process after all: as without --mpi
            raise KeyboardInterrupt
        return command(args)

    return on_ranks


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
    p.add_argument("--force", action="store_true", help=RUN_FORCE_HELP)
    p.add_argument("--mpi", action="store_true", help=MPI_HELP)
    add_output_options(p)


@_on_ranks
def cmd_run(args) -> int:
    """Run one configuration, save it to ``--out`` and print its final metrics.

    >>> from lesde.cli import main
    >>> main(["run", "--set", "n_classes=2", "--dry-run"])  # doctest: +ELLIPSIS
    n_classes = 2
    ...
    # dry run: N = 2000, p = 2, 1000 steps to t = 10, 101 records, about ... MiB of state ...
    0
    """
    from ..sim.collective import agreed
    from ..sim.engine import check_memory
    from ..sim.simulate import NonFiniteError, simulate

    out = Out(args.json)
    comm = _mpi_comm(args.mpi)
    with agreed(comm, interrupts=True):  # --mpi: what fails on one rank fails on all
        cfg, _ = load_config(args.config, args.set)
        if not args.dry_run:
            check_memory(cfg)  # what cannot run at all is said first
            _check_run_outputs(args, cfg)
            _check_run_replacements(args, comm)  # before the locks: a refusal leaves no lock
    if args.dry_run:
        return _print_plan(out, args, cfg) if _is_root(comm) else EXIT_OK
    with contextlib.ExitStack() as held:
        if comm is None:  # a sharded run's writers are its ranks (lesde.sim.mpi)
            _hold_output_locks(held, args)
            _check_run_replacements(args, comm)  # again, now that no other run writes them
        try:
            result = simulate(
                cfg,
                progress=progress_flag(args),
                checkpoint=args.checkpoint,
                checkpoint_every=args.checkpoint_every,
                # so that `lesde resume CHECKPOINT` saves where this run would have (a
                # sharded run's manifest does not carry it: `lesde resume --mpi` takes --out)
                checkpoint_meta=None
                if args.checkpoint is None or comm is not None
                else {"out": _absolute(args.out)},
                zarr_store=args.zarr,
                overwrite=args.force,
                comm=comm,
            )
        except NonFiniteError as err:
            return _numeric_failure(args, err) if _is_root(comm) else EXIT_NUMERIC
        if not _is_root(comm):  # rank 0 holds the gathered result, saves and reports it
            return EXIT_INTERRUPTED if result.interrupted else EXIT_OK
        code = _finish_run(out, args, result)
    if args.zarr is not None:
        out(f"wrote {args.zarr} (Zarr store; records also appended while running)")
    return code


def _absolute(path: str | os.PathLike) -> str:
    return os.path.abspath(os.fspath(path))


def _check_run_outputs(args, cfg) -> None:
    """Every file and folder the run will write, checked before it starts: what is there
    (not a link, a FIFO, ...), that it can be written, and that no two are the same and
    none is an input of the command. What an existing file holds is checked under the
    outputs' locks (:func:`_check_run_replacements`)."""
    check_output_file(args.out, "--out")
    _warn_if_short_of_space(args.out, cfg.state_bytes(), "--out")
    if args.checkpoint is not None:
        check_output_file(args.checkpoint, "--checkpoint")
    if args.zarr is not None:
        check_output_folder(args.zarr, "--zarr")
    check_apart(
        {"--out": args.out, "--checkpoint": args.checkpoint},
        folders={"--zarr": args.zarr},
        inputs={"CONFIG.toml": args.config},
    )


def _hold_output_locks(held: contextlib.ExitStack, args) -> None:
    """One writer per output: the locks of --out, --checkpoint and --zarr, held until the
    command ends (a second `lesde run` on one of them stops at once, naming this one)."""
    from ..io.storage import output_lock
    from ..sim.checkpoint import checkpoint_lock

    hold_lock(held, output_lock(args.out, what=f"--out {str(args.out)!r}"), "--out", args.out)
    if args.checkpoint is not None:
        hold_lock(held, checkpoint_lock(args.checkpoint), "--checkpoint", args.checkpoint)
    if args.zarr is not None:
        from ..sim.zarr_store import store_lock

        hold_lock(held, store_lock(args.zarr), "--zarr", args.zarr)


def _check_run_replacements(args, comm) -> None:
    """What is at each output path may be replaced: nothing, or what an earlier lesde run
    left there and --force. The library checks the same again as it writes."""
    from ..io.storage import NotReplacedError, check_replace

    force = "give --force to replace it"
    try:
        found = check_replace(
            args.out,
            kind="lesde-result",
            name=f"--out {str(args.out)!r}",
            overwrite=args.force,
            advice=force,
        )
        args.replace_out = found is not None
        if args.checkpoint is not None:
            resume = f"{PROG} resume {shlex.quote(str(args.checkpoint))}"
            check_replace(
                args.checkpoint,
                kind="lesde-checkpoint" if comm is None else "lesde-sharded-checkpoint",
                name=f"--checkpoint {str(args.checkpoint)!r}",
                overwrite=args.force,
                advice=f"continue it with `{resume}{'' if comm is None else ' --mpi'}`, or "
                "give --force to start over and replace it",
            )
        if args.zarr is not None:
            from ..sim.zarr_store import check_store

            check_store(
                args.zarr, overwrite=args.force, name=f"--zarr {str(args.zarr)!r}", advice=force
            )
    except NotReplacedError as err:
        raise UsageError(str(err)) from None


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
        help="replace a lesde result of another run at --out (its own partial result is "
        "replaced anyway; files lesde did not write never are)",
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


@_on_ranks
def cmd_resume(args) -> int:
    """Continue a checkpointed run to its end, then save and report it as ``lesde run`` does.

    >>> from lesde.cli import main
    >>> main(["resume", "no-such.ckpt"])  # the message goes to stderr
    1
    """
    from ..io.storage import check_input
    from ..sim.checkpoint import read_checkpoint, resume
    from ..sim.simulate import NonFiniteError

    out = Out(args.json)
    comm = _mpi_comm(args.mpi)
    if comm is None:  # a sharded run checks its inputs on every rank (_resume_sharded)
        try:
            check_input(args.checkpoint, "checkpoint file")
        except (FileNotFoundError, ValueError) as err:
            raise UsageError(str(err)) from None
    with contextlib.ExitStack() as held:
        try:
            if comm is None:
                result = _resume_one_process(held, args, read_checkpoint, resume)
            else:
                result = _resume_sharded(args, comm)
        except NonFiniteError as err:
            return _numeric_failure(args, err) if _is_root(comm) else EXIT_NUMERIC
        if not _is_root(comm):
            return EXIT_INTERRUPTED if result.interrupted else EXIT_OK
        out(_resumed_line(args.checkpoint, result))
        return _finish_run(out, args, result)


def _resume_sharded(args, comm):
    """``lesde resume --mpi``: every rank checks the checkpoint and the outputs (agreed,
    before any collective), then the ranks finish the run together."""
    from ..io.storage import check_input
    from ..sim.collective import agreed
    from ..sim.mpi import resume_sharded
    from ..sim.sharded_checkpoint import read_sharded_manifest

    with agreed(comm, interrupts=True):
        check_input(args.checkpoint, "sharded lesde checkpoint")
        if args.out is None:
            raise UsageError("--mpi: give --out PATH (a sharded checkpoint does not record it)")
        cfg, _ = read_sharded_manifest(args.checkpoint)
        check_output_file(args.checkpoint, "the checkpoint")  # it keeps being rewritten
        check_output_file(args.out, "--out")
        check_apart({"--out": args.out}, inputs={"the checkpoint": args.checkpoint})
        _check_resumed_out(args, cfg)
    return resume_sharded(
        args.checkpoint,
        comm,
        progress=progress_flag(args),
        checkpoint_every=args.checkpoint_every,
    )


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


def _check_resumed_out(args, cfg) -> None:
    """Resume may replace the result of its own run (the partial result an interrupted
    ``lesde run`` saved; ``cfg`` is the run's config), a result of another run only with
    --force, and nothing that lesde did not write."""
    from ..io.storage import NotReplacedError, check_replace, read_header

    header = read_header(args.out) if os.path.lexists(args.out) else None
    own = cfg is not None and _result_config(header) == cfg
    try:
        found = check_replace(
            args.out,
            kind="lesde-result",
            name=f"--out {str(args.out)!r}",
            overwrite=args.force or own,
            advice="it is not a result of this run: give --force to replace it",
        )
    except NotReplacedError as err:
        raise UsageError(str(err)) from None
    args.replace_out = found is not None


def _result_config(header: dict | None):
    """The config in the header of a lesde result file (:func:`lesde.io.storage.read_header`),
    or None when it has none."""
    from ..sim.config import Config

    try:
        return Config.from_toml_text(header["config_toml"])
    except Exception:  # not a readable lesde result: another file
        return None


def _resume_one_process(held: contextlib.ExitStack, args, read_checkpoint, resume):
    """The checkpoint's run to its end, saving where the run would have (or --out). The
    checkpoint's lock is taken before it is read, and --out's before it is checked; both
    stay held (``held``) until the result is saved."""
    from ..io.storage import lesde_kind, output_lock, read_header
    from ..sim.checkpoint import checkpoint_lock

    check_output_file(args.checkpoint, "the checkpoint")  # it keeps being rewritten
    if lesde_kind(read_header(args.checkpoint)) != "lesde-checkpoint":
        read_checkpoint(args.checkpoint)  # its one-line refusal, before any lock file is made
    hold_lock(held, checkpoint_lock(args.checkpoint), "the checkpoint", args.checkpoint)
    ckpt = read_checkpoint(args.checkpoint)
    if args.out is None:
        args.out = ckpt.meta.get("out")
        if not isinstance(args.out, str):
            raise UsageError(
                f"{args.checkpoint} does not say where its result goes (it was not written by "
                "`lesde run`): give --out PATH"
            )
    check_output_file(args.out, "--out")
    check_apart({"--out": args.out}, inputs={"the checkpoint": args.checkpoint})
    _check_resumed_out(args, ckpt.config)
    hold_lock(held, output_lock(args.out, what=f"--out {str(args.out)!r}"), "--out", args.out)
    _check_resumed_out(args, ckpt.config)  # again, now that no other command writes it
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
    from ..sweep.grid import expand_grid

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
