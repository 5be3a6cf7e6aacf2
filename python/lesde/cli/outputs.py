"""What ``lesde run`` and ``lesde resume`` may write: every output checked before the run,
one writer per output (locks), and what may be replaced (only what lesde wrote, with
``--force`` unless it is the run's own partial result).

Examples
--------
>>> import os, tempfile
>>> from lesde.cli.outputs import check_resumed_out
>>> from types import SimpleNamespace
>>> args = SimpleNamespace(out=os.path.join(tempfile.mkdtemp(), "run.npz"), force=False)
>>> check_resumed_out(args, None)  # nothing there yet: nothing to replace
>>> args.replace_out
False
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import warnings
from pathlib import Path

from .common import (
    PROG,
    UsageError,
    check_apart,
    check_output_file,
    check_output_folder,
    hold_lock,
)

__all__ = [
    "absolute_path",
    "check_resumed_out",
    "check_run_outputs",
    "check_run_replacements",
    "format_size",
    "hold_output_locks",
]


def absolute_path(path: str | os.PathLike) -> str:
    """``path`` made absolute (what a checkpoint records as the run's ``--out``).

    Examples
    --------
    >>> os.path.isabs(absolute_path("run.npz"))
    True
    """
    return os.path.abspath(os.fspath(path))


def check_run_outputs(args, cfg) -> None:
    """Every file and folder the run will write, checked before it starts: what is there
    (not a link, a FIFO, ...), that it can be written, and that no two are the same and
    none is an input of the command. What an existing file holds is checked under the
    outputs' locks (:func:`check_run_replacements`)."""
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


def hold_output_locks(held: contextlib.ExitStack, args) -> None:
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


def check_run_replacements(args, comm) -> None:
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
    folder = Path(absolute_path(path)).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < need:
        warnings.warn(
            f"{option} {path}: {format_size(free)} free on its file system, and the result needs "
            f"about {format_size(need)}",
            RuntimeWarning,
            stacklevel=2,
        )


def format_size(n_bytes: float) -> str:
    """``n_bytes`` in MiB, or GiB from 1 GiB on.

    Examples
    --------
    >>> format_size(3 * 2**20), format_size(2**31)
    ('3.0 MiB', '2.00 GiB')
    """
    return f"{n_bytes / 2**30:.2f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.1f} MiB"


def check_resumed_out(args, cfg) -> None:
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
