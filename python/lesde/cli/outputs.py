"""What a command may write: every output path checked before any work starts (what is
there, that it can be written, that no two outputs are one file and none is an input), one
writer per output (its lock held until the command ends), and, for ``lesde run`` and
``lesde resume``, what may be replaced (only what lesde wrote, with ``--force`` unless it is
the run's own partial result).

Examples
--------
>>> import os, tempfile
>>> from lesde.cli.outputs import check_output_file, check_resumed_out
>>> from types import SimpleNamespace
>>> args = SimpleNamespace(out=os.path.join(tempfile.mkdtemp(), "run.npz"), force=False)
>>> check_output_file(args.out, "--out").name
'run.npz'
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
from typing import Any

from ..io.atomic import probe_write
from ..io.storage import file_kind, same_path
from .common import PROG, UsageError

__all__ = [
    "absolute_path",
    "check_apart",
    "check_output_file",
    "check_output_folder",
    "check_resumed_out",
    "check_run_outputs",
    "check_run_replacements",
    "format_size",
    "hold_lock",
    "hold_output_locks",
]


# ---------------------------------------------------------------------------- any command
def _check_can_create_in(folder: Path, option: str, target: Path) -> None:
    """Create and delete a file where ``target`` will go (in its nearest existing folder,
    since lesde creates missing folders), so a read-only or unwritable place is found now."""
    existing = folder
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} {str(target)!r}: {str(existing)!r} is not a folder")
    try:
        probe_write(existing)
    except OSError as err:
        raise UsageError(
            f"{option} {str(target)!r} cannot be written: {err.strerror or err} "
            f"(in {str(existing)!r})"
        ) from None


def check_output_file(path: str | os.PathLike, option: str) -> Path:
    """Refuse an output file before any work starts: one that exists and is not a regular
    file (a folder, a symbolic link, a device, a FIFO: writing would replace it), or a place
    where no file can be created (a read-only or unwritable folder). Returns the path.

    >>> import tempfile
    >>> check_output_file(tempfile.mkdtemp(), "--out")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    lesde.cli.common.UsageError: --out '...' is a folder, not a regular file; give a file path
    """
    target = Path(path)
    kind = file_kind(target)
    if kind is not None:
        raise UsageError(
            f"{option} {str(target)!r} is {kind}, not a regular file; give a file path"
        )
    _check_can_create_in(target.parent, option, target)
    return target


def check_output_folder(path: str | os.PathLike, option: str) -> Path:
    """Refuse an output folder before any work starts: one that exists and is not a folder
    (a symbolic link too), or a place where nothing can be written. Returns the path.

    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> check_output_folder(os.path.join(folder, "new", "sweep"), "--out").name
    'sweep'
    """
    target = Path(path)
    kind = file_kind(target)
    if kind is None and os.path.lexists(target):
        kind = "a file"
    if kind not in (None, "a folder"):
        raise UsageError(f"{option} {str(target)!r} is {kind}, not a folder")
    _check_can_create_in(target, option, target)
    return target


def check_apart(
    files: dict[str, Any],
    folders: dict[str, Any] | None = None,
    inputs: dict[str, Any] | None = None,
) -> None:
    """Refuse outputs that are the same file (or one inside an output folder), and an
    output that is one of the command's inputs: compared by inode where the files exist
    (hard links, symbolic links, relative spellings), else by real path. Each dict maps
    how a path is named (``"--out"``) to the path (None: not given).

    >>> check_apart({"--out": "cfg.toml"}, inputs={"CONFIG.toml": "./cfg.toml"})
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    lesde.cli.common.UsageError: --out 'cfg.toml' is CONFIG.toml './cfg.toml', an input of ...
    """
    files = {k: v for k, v in files.items() if v is not None}
    folders = {k: v for k, v in (folders or {}).items() if v is not None}
    inputs = {k: v for k, v in (inputs or {}).items() if v is not None}
    outputs = list({**files, **folders}.items())
    for i, (name, path) in enumerate(outputs):
        for other, other_path in outputs[i + 1 :]:
            if same_path(path, other_path):
                raise UsageError(f"{name} and {other} are the same file ({path}); give two paths")
        for what, source in inputs.items():
            if same_path(path, source):
                raise UsageError(
                    f"{name} {str(path)!r} is {what} {str(source)!r}, an input of this "
                    "command; give another path"
                )
    for name, path in files.items():
        for other, folder in folders.items():
            if os.path.realpath(path).startswith(os.path.realpath(folder) + os.sep):
                raise UsageError(
                    f"{name} {str(path)!r} is inside {other} {str(folder)!r}; put it elsewhere"
                )


def hold_lock(held, lock, option: str, path: str | os.PathLike) -> None:
    """Enter ``lock`` (:func:`lesde.io.storage.output_lock` of an output) on the ExitStack
    ``held``; a lock file that cannot be made is the output's one-line error. Another
    writer holding it raises :class:`lesde.io.storage.InUseError` (one line, naming it).

    >>> import contextlib, os, tempfile
    >>> from lesde.io.storage import output_lock
    >>> path = os.path.join(tempfile.mkdtemp(), "r.npz")
    >>> with contextlib.ExitStack() as held:
    ...     hold_lock(held, output_lock(path, what="--out"), "--out", path)
    """
    try:
        held.enter_context(lock)
    except OSError as err:
        raise UsageError(
            f"{option} {str(path)!r} cannot be written: {err.strerror or err} (its lock "
            f"file {err.filename})"
        ) from None


# ---------------------------------------------------------------------------- run and resume
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
