"""``lesde run``, ``lesde resume`` and ``lesde validate``: one configuration at a time.

The commands and their options live here, with the running on MPI ranks (``--mpi``);
:mod:`lesde.cli.outputs` checks and locks what they write, and :mod:`lesde.cli.report`
saves the result and says how it went.

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
import sys

from ..sim.collective import AgreedError, counting_interrupts, interrupt_count
from ..sim.config import toml_value
from ..sim.engine import InsufficientMemoryError
from .common import (
    EXIT_INTERRUPTED,
    EXIT_NUMERIC,
    EXIT_OK,
    EXIT_USAGE,
    ZARR_HINT,
    Out,
    UsageError,
    add_command,
    add_output_options,
    add_set_option,
    config_fields_epilog,
    print_json,
    progress_flag,
)
from .config import load_config
from .outputs import (
    absolute_path,
    check_apart,
    check_output_file,
    check_resumed_out,
    check_run_outputs,
    check_run_replacements,
    hold_lock,
    hold_output_locks,
)
from .report import finish_run, numeric_failure, print_plan, resumed_line

__all__ = [
    "add_resume",
    "add_run",
    "add_validate",
    "cmd_resume",
    "cmd_run",
    "cmd_validate",
    "mpi_comm",
]

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
            comm = mpi_comm(True)
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
    comm = mpi_comm(args.mpi)
    with agreed(comm, interrupts=True):  # --mpi: what fails on one rank fails on all
        cfg, _ = load_config(args.config, args.set)
        if not args.dry_run:
            check_memory(cfg)  # what cannot run at all is said first
            check_run_outputs(args, cfg)
            check_run_replacements(args, comm)  # before the locks: a refusal leaves no lock
    if args.dry_run:
        return print_plan(out, args, cfg) if _is_root(comm) else EXIT_OK
    with contextlib.ExitStack() as held:
        if comm is None:  # a sharded run's writers are its ranks (lesde.sim.mpi)
            hold_output_locks(held, args)
            check_run_replacements(args, comm)  # again, now that no other run writes them
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
                else {"out": absolute_path(args.out)},
                zarr_store=args.zarr,
                overwrite=args.force,
                comm=comm,
            )
        except NonFiniteError as err:
            return numeric_failure(args, err) if _is_root(comm) else EXIT_NUMERIC
        if not _is_root(comm):  # rank 0 holds the gathered result, saves and reports it
            return EXIT_INTERRUPTED if result.interrupted else EXIT_OK
        code = finish_run(out, args, result)
    if args.zarr is not None:
        out(f"wrote {args.zarr} (Zarr store; records also appended while running)")
    return code


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
    comm = mpi_comm(args.mpi)
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
            return numeric_failure(args, err) if _is_root(comm) else EXIT_NUMERIC
        if not _is_root(comm):
            return EXIT_INTERRUPTED if result.interrupted else EXIT_OK
        out(resumed_line(args.checkpoint, result))
        return finish_run(out, args, result)


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
        check_resumed_out(args, cfg)
    return resume_sharded(
        args.checkpoint,
        comm,
        progress=progress_flag(args),
        checkpoint_every=args.checkpoint_every,
    )


def mpi_comm(mpi: bool):
    """``--mpi``: MPI.COMM_WORLD when it has more than one rank (else None: one process).

    >>> mpi_comm(False) is None
    True
    """
    if not mpi:
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        raise UsageError("--mpi needs mpi4py: pip install 'lesde[mpi]'") from None
    return MPI.COMM_WORLD if MPI.COMM_WORLD.Get_size() > 1 else None


def _is_root(comm) -> bool:
    return comm is None or comm.Get_rank() == 0


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
    check_resumed_out(args, ckpt.config)
    hold_lock(held, output_lock(args.out, what=f"--out {str(args.out)!r}"), "--out", args.out)
    check_resumed_out(args, ckpt.config)  # again, now that no other command writes it
    return resume(
        ckpt,
        progress=progress_flag(args),
        checkpoint_every=args.checkpoint_every,
        checkpoint_meta={**ckpt.meta, "out": absolute_path(args.out)},
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
