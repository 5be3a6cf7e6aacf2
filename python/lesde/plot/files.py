"""Figure files: :func:`save` writes PNG, PDF or SVG, and a PNG it wrote says so
(:func:`drawn_by_lesde`), so that ``lesde plot`` replaces its own figures only.

Examples
--------
>>> import os, tempfile
>>> from lesde.plot.files import drawn_by_lesde, save
>>> from lesde.plot.style import pyplot
>>> path = save(pyplot().figure(), os.path.join(tempfile.mkdtemp(), "f.png"))
>>> drawn_by_lesde(path)
True
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["drawn_by_lesde", "save"]


def save(fig, path) -> Path:
    """Write a Figure (or the Figure of an Axes) to ``path``: PNG, PDF or SVG by extension.

    Parent folders are created; the bounding box is tight. Returns the path.

    Examples
    --------
    >>> import os, tempfile
    >>> from lesde.plot.style import pyplot
    >>> fig = pyplot().figure()
    >>> path = save(fig, os.path.join(tempfile.mkdtemp(), "figs", "empty.svg"))
    >>> path.name, path.exists()
    ('empty.svg', True)
    """
    figure = getattr(fig, "figure", None) if not hasattr(fig, "savefig") else fig
    if figure is None or not hasattr(figure, "savefig"):
        raise TypeError(f"save needs a matplotlib Figure or Axes, got {type(fig).__name__}")
    path = Path(path)
    ext = path.suffix.lower().lstrip(".")
    if ext not in ("png", "pdf", "svg"):
        raise ValueError(f"save writes .png, .pdf or .svg files, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # A PNG says it was drawn by lesde (drawn_by_lesde), so that `lesde plot` replaces
    # its own figures and never a picture of the user's.
    metadata = {"Software": _SOFTWARE} if ext == "png" else None
    figure.savefig(path, format=ext, bbox_inches="tight", dpi=150, metadata=metadata)
    return path


_SOFTWARE = "lesde (matplotlib)"  # the PNG tEXt "Software" of lesde's figures
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def drawn_by_lesde(path: str | os.PathLike) -> bool:
    """Whether the file at ``path`` is a PNG figure that :func:`save` wrote (its
    ``Software`` text chunk says so). Only the chunks before the image data are read, and
    anything but a regular file (a FIFO) is not opened for a blocking read.

    Examples
    --------
    >>> import os, tempfile
    >>> from lesde.plot.style import pyplot
    >>> path = os.path.join(tempfile.mkdtemp(), "empty.png")
    >>> _ = save(pyplot().figure(), path)
    >>> drawn_by_lesde(path), drawn_by_lesde(os.path.dirname(path))
    (True, False)
    """
    from ..io.storage import open_input

    try:
        with open_input(path, "figure") as f:
            if f.read(8) != _PNG_SIGNATURE:
                return False
            for _ in range(64):  # the text chunks come before the image data
                head = f.read(8)
                if len(head) < 8:
                    return False
                size, kind = int.from_bytes(head[:4], "big"), head[4:]
                if kind in (b"IDAT", b"IEND") or size > 2**20:
                    return False
                data = f.read(size)
                f.read(4)  # CRC
                if kind == b"tEXt" and data == b"Software\0" + _SOFTWARE.encode():
                    return True
    except (OSError, ValueError):
        return False
    return False
