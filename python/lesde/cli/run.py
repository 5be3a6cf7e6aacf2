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

import sys
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
    config_fields_epilog,
    load_config,
    print_json,
    progress_flag,
    summary_tables,
)

__all__ = ["add_resume", "add_run", "add_validate", "cmd_resume", "cmd_run", "cmd_validate"]

CHECKPOINT_EVERY_HELP = "steps between checkpoints (default: about every 60 s)"


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
        help="validate and print the resolved config and the run's size; run nothing",
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
    add_output_options(p)


def cmd_run(args) -> int:
    """Run one configuration, save it to ``--out`` and print its final metrics.

    >>> from lesde.cli import main
    >>> main(["run", "--set", "n_classes=2", "--dry-run"])  # doctest: +ELLIPSIS
    n_classes = 2
    ...
    # dry run: N = 2000, p = 2, 1000 steps to t = 10, 101 records, about ... MiB of state; ...
    0
    """
    from ..simulate import NonFiniteError, simulate

    out = Out(args.json)
    cfg, _ = load_config(args.config, args.set)
    if args.dry_run:
        _print_plan(out, args, cfg)
        return EXIT_OK
    try:
        result = simulate(
            cfg,
            progress=progress_flag(args),
            checkpoint=args.checkpoint,
            checkpoint_every=args.checkpoint_every,
            zarr_store=args.zarr,
        )
    except NonFiniteError as err:
        return _numeric_failure(args, err)
    code = _finish_run(out, args, result)
    if args.zarr is not None:
        out(f"wrote {args.zarr} (Zarr store; records also appended while running)")
    return code


def _print_plan(out: Out, args, cfg) -> None:
    """--dry-run: the resolved config and the size of the run, nothing run or written."""
    if args.json:
        print_json(
            {
                "dry_run": True,
                "config": cfg.to_dict(resolved=True),
                "n_samples": cfg.n_samples,
                "p": cfg.p,
                "n_steps": cfg.n_steps,
                "t_end": cfg.n_steps * cfg.dt,
                "n_records": len(cfg.record_steps),
                "state_bytes": cfg.state_bytes(),
                "out": str(args.out),
                "zarr": None if args.zarr is None else str(args.zarr),
            }
        )
        return
    out(cfg.to_toml(resolved=True).rstrip())
    out(
        f"# dry run: N = {cfg.n_samples}, p = {cfg.p}, {cfg.n_steps} steps to "
        f"t = {cfg.n_steps * cfg.dt:g}, {len(cfg.record_steps)} records, about "
        f"{cfg.state_bytes() / 2**20:.1f} MiB of state; would write {args.out}"
    )


def _result_report(result, out_path: str | None) -> dict[str, Any]:
    cfg = result.config
    return {
        "ok": result.ok,
        "out": out_path,
        "summary": result.summary(),
        "status": [str(s) for s in result.status],
        "steps_done": result.steps_done,
        "n_steps": cfg.n_steps,
        "interrupted": result.interrupted,
        "wall_seconds": result.meta.get("wall_seconds"),
        "config": cfg.to_dict(resolved=True),
    }


def _print_result(out: Out, result) -> None:
    cfg = result.config
    R = len(result.status)
    out(
        f"final metrics at t = {result.times[-1] if result.times.size else 0:g} "
        f"over {R} replica(s) ({int(np.sum(result.status == 'ok'))} ok), "
        f"signal={cfg.signal}, K={cfg.n_classes}, N={cfg.n_samples}, p={cfg.p}"
    )
    out(summary_tables(result))
    wall = result.meta.get("wall_seconds")
    if wall is not None:
        out(f"{result.steps_done} steps in {wall:.2f} s")


def _numeric_failure(args, err) -> int:
    """Save the partial result of a NonFiniteError and report it (exit 2)."""
    result = err.result
    result.save(args.out)
    print(f"{PROG}: error: numerical failure: {err}", file=sys.stderr)
    print(f"{PROG}: the partial result was saved to {args.out}", file=sys.stderr)
    if args.json:
        print_json({**_result_report(result, str(args.out)), "error": str(err)})
    return EXIT_NUMERIC


def _finish_run(out: Out, args, result) -> int:
    """Save a finished (or interrupted) run and print its summary."""
    result.save(args.out)
    if args.json:
        print_json(_result_report(result, str(args.out)))
    else:
        _print_result(out, result)
        out(f"wrote {args.out}")
    if result.interrupted:
        print(f"{PROG}: interrupted; the partial result was saved to {args.out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


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
        "is bit-identical to an uninterrupted run; the checkpoint keeps being "
        "updated. A damaged or incompatible checkpoint is refused (exit 1).",
        epilog="Example:\n  lesde run cfg.toml --checkpoint run.ckpt --out run.npz\n"
        "  (killed)\n  lesde resume run.ckpt --out run.npz",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint file")
    p.add_argument("--out", default="run.npz", metavar="PATH", help="where to save the result")
    p.add_argument(
        "--checkpoint-every", type=int, default=None, metavar="STEPS", help=CHECKPOINT_EVERY_HELP
    )
    add_output_options(p)


def cmd_resume(args) -> int:
    """Continue a checkpointed run to its end, then save and report it as ``lesde run`` does.

    >>> from lesde.cli import main
    >>> main(["resume", "no-such.ckpt"])  # the message goes to stderr
    1
    """
    from ..checkpoint import resume
    from ..simulate import NonFiniteError

    out = Out(args.json)
    if not Path(args.checkpoint).is_file():
        raise UsageError(f"no checkpoint file {args.checkpoint}")
    try:
        result = resume(
            args.checkpoint, progress=progress_flag(args), checkpoint_every=args.checkpoint_every
        )
    except NonFiniteError as err:
        return _numeric_failure(args, err)
    out(f"resumed {args.checkpoint} from step {result.meta.get('resumed_from_step')}")
    return _finish_run(out, args, result)


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
