"""What lesde may replace: never a file it did not write, nor one of another kind, nor
its own without being asked (:func:`check_replace`, :class:`NotReplacedError`).

Examples
--------
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "run.npz")
>>> check_replace(path, kind="lesde-result", name="--out run.npz", overwrite=False) is None
True
"""

from __future__ import annotations

import os
from typing import Any

from .inputs import file_kind
from .npz import KINDS, lesde_kind, read_header

__all__ = ["NotReplacedError", "check_replace", "same_path"]


class NotReplacedError(ValueError):
    """lesde refuses to replace what is at an output path: a file it did not write (or of
    another kind), or its own file when replacing it was not asked for."""


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name the same file: the same inode when both exist (so hard
    links, symbolic links and relative spellings are caught), else the same real path.

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> same_path(os.path.join(folder, "x.npz"), os.path.join(folder, ".", "x.npz"))
    True
    """
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return os.path.realpath(a) == os.path.realpath(b)


def check_replace(
    path: str | os.PathLike,
    *,
    kind: str,
    name: str,
    overwrite: bool,
    advice: str = "pass overwrite=True to replace it",
) -> dict[str, Any] | None:
    """Refuse to write a file of ``kind`` at ``path`` over anything lesde may not replace.

    Nothing there: fine. A file lesde did not write, a lesde file of another kind, or
    something that is not a regular file (a link, a FIFO, a folder, ...) is never replaced.
    A lesde file of ``kind`` is replaced only with ``overwrite``; otherwise the refusal
    ends with ``advice`` (how to ask for it: ``--force``, ``overwrite=True``). Only the
    file's header is read (:func:`read_header`). Returns that header, or None when
    nothing is there.

    ``name`` says what the path is in messages, e.g. ``"--out 'run.npz'"``.

    Raises
    ------
    NotReplacedError
        One line that names the path, what is there and what to do.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "notes.txt")
    >>> _ = open(path, "w").write("mine")
    >>> check_replace(path, kind="lesde-result", name="notes.txt", overwrite=True)
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    lesde.io.replace.NotReplacedError: notes.txt exists and is not a file lesde wrote; ...
    """
    if not os.path.lexists(path):
        return None
    found = file_kind(path)
    if found is not None:
        raise NotReplacedError(
            f"{name} is {found}, not a regular file, which writing would replace; give a file path"
        )
    header = read_header(path)
    found = lesde_kind(header)
    if found is None:
        raise NotReplacedError(
            f"{name} exists and is not a file lesde wrote; lesde never replaces a file it "
            "did not write: move it away or choose another path"
        )
    article, noun = KINDS[kind].split(",")[0].split(" ", 1)  # "a", "result file"
    if found != kind:
        raise NotReplacedError(
            f"{name} is {KINDS[found]}; lesde would replace only {article} lesde {noun} "
            "there: choose another path"
        )
    if not overwrite:
        step = f" (step {header['step']})" if isinstance(header.get("step"), int) else ""
        raise NotReplacedError(
            f"{name} holds {article} lesde {noun} already{step}; {advice}, or choose another path"
        )
    return header
