"""lesde's ``.npz`` files: written with a JSON header, read back only after every check
that can be made first, never unpickling.

lesde's ``.npz`` files (results, checkpoints, training records) are ``np.savez`` archives
with one JSON member ``header`` that holds at least ``kind`` and ``format_version``:
:func:`write_npz` writes one (atomically), :func:`read_npz` reads one back. Before any
array is read it checks the member names, the header's kind and format version, and every
member's declared dtype and shape (``.npy`` headers) against the bytes the zip directory
gives, against a memory limit (:func:`lesde.io.memory.check_size`) and against what the
header says the file must hold (the reader's ``expect``: results and checkpoints compute
every shape from their config), so a damaged or hostile file cannot make it allocate more
than the file says it holds, nor that more than the memory allows. Every refusal is one
``ValueError`` line that starts with the file's path.

Examples
--------
>>> import os, tempfile, numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "demo.npz")
>>> write_npz(path, {"x": np.arange(3.0)}, {"kind": "demo", "format_version": 1})
>>> read_npz(path, what="demo file", kind="demo", format_version=1, required=["x"]).arrays
{'x': array([0., 1., 2.])}
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from . import atomic, memory
from .inputs import open_input

__all__ = [
    "KINDS",
    "MAX_HEADER_BYTES",
    "Declared",
    "Expect",
    "NpzContents",
    "Spec",
    "check_header",
    "header_text",
    "lesde_kind",
    "read_header",
    "read_npz",
    "write_npz",
]

#: The kinds of file lesde writes, and how each is read: named when a file of one kind is
#: given to the reader of another.
KINDS = {
    "lesde-result": "a result file, read it with lesde.load",
    "lesde-checkpoint": "a checkpoint, resume it with lesde.resume",
    "lesde.nn.TrainingResult": "a training record, read it with lesde.nn.load_training",
    "lesde-zarr": "a Zarr store, read it with lesde.load_zarr",
    "lesde-sharded-checkpoint": (
        "the checkpoint of a run sharded over MPI ranks, resume it on as many ranks with "
        "`mpiexec -n RANKS lesde resume PATH --mpi` (lesde.sim.mpi.resume_sharded)"
    ),
    "lesde-checkpoint-shard": "one rank's part of a sharded checkpoint, resume its manifest",
    "lesde-checkpoint-records": "the records of a sharded checkpoint, resume its manifest",
}


def header_text(header: Mapping[str, Any]) -> str:
    """The JSON text :func:`write_npz` stores for ``header`` (keys sorted, so it is one text
    per header: what a checksum over the header covers).

    Examples
    --------
    >>> header_text({"kind": "demo", "format_version": 1})
    '{"format_version": 1, "kind": "demo"}'
    """
    return json.dumps(dict(header), sort_keys=True)


def write_npz(
    path: str | os.PathLike, arrays: Mapping[str, np.ndarray], header: Mapping[str, Any]
) -> None:
    """Write ``arrays`` and the JSON ``header`` (which names its ``kind`` and
    ``format_version``) to an ``.npz`` file, atomically.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.npz")
    >>> write_npz(path, {"x": np.zeros(2)}, {"kind": "demo", "format_version": 1})
    >>> sorted(np.load(path).files)
    ['header', 'x']
    """
    if "kind" not in header or "format_version" not in header:
        raise ValueError("an npz header must hold 'kind' and 'format_version'")
    if "header" in arrays:
        raise ValueError("'header' is the name of the JSON member; rename that array")
    atomic.atomic_savez(path, {**arrays, "header": np.array(header_text(header))})


def read_header(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON header of the lesde ``.npz`` file at ``path``, or None when it is not one
    (not a zip, no header, not a regular file, unreadable).

    Only the zip directory and the header member are read: nothing is unpickled, no array
    is read, and a FIFO or a device is not opened for a blocking read (:func:`open_input`).

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.npz")
    >>> write_npz(path, {"x": np.zeros(2)}, {"kind": "demo", "format_version": 1})
    >>> read_header(path)
    {'format_version': 1, 'kind': 'demo'}
    >>> read_header(os.path.dirname(path)) is None
    True
    """
    try:
        with open_input(path, "lesde file") as file, _parsing():
            with zipfile.ZipFile(file) as archive:
                infos = _members(path, archive.infolist(), "lesde file")
                return _parse_header(_header_text(archive, infos["header"]))
    except (OSError, ValueError, _Unreadable, RecursionError):
        return None


def lesde_kind(header: Mapping[str, Any] | None) -> str | None:
    """The kind (a key of :data:`KINDS`) of a file with this :func:`read_header`, or None
    when it is not a file lesde writes. Result files written before lesde tagged its files
    have no ``kind``; their header holds the config and ``steps_done``.

    Examples
    --------
    >>> lesde_kind({"kind": "lesde-checkpoint", "format_version": 1})
    'lesde-checkpoint'
    >>> lesde_kind({"config_toml": "", "steps_done": 3, "format_version": 1})
    'lesde-result'
    >>> lesde_kind({"kind": "demo"}) is None
    True
    """
    if header is None:
        return None
    kind = header.get("kind")
    if kind is None and {"config_toml", "steps_done", "format_version"} <= set(header):
        return "lesde-result"
    return kind if kind in KINDS else None


def check_header(
    source: Any,
    header: Mapping[str, Any],
    *,
    what: str,
    kind: str,
    format_version: int,
    allow_missing_kind: bool = False,
) -> None:
    """Refuse a header (npz header, Zarr attributes) of another kind or format version.

    ``allow_missing_kind`` accepts a header without ``kind``: result files written before
    lesde tagged its files have none.

    Examples
    --------
    >>> check_header("run.npz", {"kind": "lesde-result", "format_version": 1},
    ...              what="lesde checkpoint", kind="lesde-checkpoint", format_version=1)
    Traceback (most recent call last):
        ...
    ValueError: run.npz: not a lesde checkpoint (it is a result file, read it with lesde.load)
    """
    found = header.get("kind")
    if found != kind and not (found is None and allow_missing_kind):
        why = f"it is {KINDS[found]}" if found in KINDS else f"kind {found!r}"
        raise ValueError(f"{source}: not a {what} ({why})")
    version = header.get("format_version")
    if version != format_version:
        raise ValueError(
            f"{source}: {what} format version {version} cannot be read by this lesde "
            f"(it reads version {format_version})"
        )


@dataclass
class NpzContents:
    """What :func:`read_npz` read: the parsed header, its exact text, and the arrays."""

    header: dict[str, Any]
    header_text: str
    arrays: dict[str, np.ndarray]


@dataclass(frozen=True)
class Declared:
    """What a member's ``.npy`` header declares: dtype and shape (nothing read yet)."""

    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


#: What a reader expects of one member: its dtype (exact, or a string of dtype kinds such
#: as ``"f"``, ``"iu"``, ``"U"``) and its shape.
Spec = tuple["np.dtype | str", tuple[int, ...]]
#: ``expect(header, declared)``: the :data:`Spec` of every member a file with this header
#: may hold, given what the members declare (e.g. a record count read off one member).
#: It raises ValueError (a message without the path) for a header it cannot use.
Expect = Callable[[dict[str, Any], dict[str, Declared]], Mapping[str, Spec]]

#: Largest JSON header read (bytes of its ``.npy`` member): a config with long tabulated
#: schedules takes a few MB; anything far beyond is not a lesde file.
MAX_HEADER_BYTES = 64 * 2**20


class _Unreadable(Exception):
    """A file that cannot be parsed; :func:`read_npz` turns it into one ValueError."""


def read_npz(
    path: str | os.PathLike,
    *,
    what: str,
    kind: str,
    format_version: int,
    required: Iterable[str],
    optional: Iterable[str] = (),
    prefixes: Iterable[str] = (),
    allow_missing_kind: bool = False,
    limit_bytes: int | None = None,
    expect: Expect | None = None,
) -> NpzContents:
    """Read an ``.npz`` file written by :func:`write_npz`, checking it first.

    Nothing but the zip directory, ``.npy`` headers and the JSON header is read until every
    check has passed. In order: the zip directory (every member an ``.npy`` array, no name
    twice, a ``header``); the JSON header (at most :data:`MAX_HEADER_BYTES`; kind and
    format version, :func:`check_header`); the member names (all of ``required``, the
    others among ``optional`` or starting with one of ``prefixes``); every member's ``.npy``
    header (no Python objects; the declared dtype and shape account for exactly the
    uncompressed bytes the zip directory gives); the total declared bytes (at most
    ``limit_bytes``, by default 90 % of :func:`available_memory`); then, with ``expect``,
    every member's declared dtype and shape against what the header says it must be. Only
    then are the arrays read (the zip CRC of each is checked). Never unpickles.

    Parameters
    ----------
    what : str
        How messages name the file, e.g. ``"lesde result file"``.
    kind, format_version, allow_missing_kind
        What the header must say (:func:`check_header`).
    expect : callable, optional
        ``expect(header, declared)`` (see :data:`Expect`): the dtype and shape each member
        must declare. A member it does not name is refused.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Anything else; one line that starts with the path and says what is wrong.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.npz")
    >>> write_npz(path, {"x": np.zeros(2)}, {"kind": "demo", "format_version": 1})
    >>> read_npz(path, what="demo file", kind="other", format_version=1, required=["x"])
    Traceback (most recent call last):
        ...
    ValueError: ...demo.npz: not a demo file (kind 'demo')
    >>> read_npz(path, what="demo file", kind="demo", format_version=1, required=["y"])
    Traceback (most recent call last):
        ...
    ValueError: ...demo.npz: incomplete demo file, missing y
    >>> read_npz(path, what="demo file", kind="demo", format_version=1, required=["x"],
    ...          expect=lambda header, declared: {"x": ("f", (3,))})
    Traceback (most recent call last):
        ...
    ValueError: ...demo.npz: array 'x' should be float (3,) for its header, but declares ...
    """
    try:
        with open_input(path, what) as file:
            text, header, declared = _read_directory(
                path, file, what, kind, format_version, allow_missing_kind
            )
            _check_names(path, set(declared), what, required, optional, prefixes)
            _check_total(path, declared, what, limit_bytes)
            if expect is not None:
                try:
                    expected = expect(header, declared)
                except ValueError as err:  # keeps its type (InsufficientMemoryError, ...)
                    raise type(err)(f"{path}: {err}") from None
                _check_declared(path, declared, expected, what)
            file.seek(0)
            with np.load(file, allow_pickle=False) as data:
                arrays = {name: _member(data, name) for name in declared}
    except _Unreadable as err:
        raise ValueError(f"{path}: not a readable {what}, damaged or truncated ({err})") from None
    return NpzContents(header, text, arrays)


def _read_directory(
    path: Any, file: IO[bytes], what: str, kind: str, format_version: int, allow_missing: bool
) -> tuple[str, dict[str, Any], dict[str, Declared]]:
    """The header's text and content, and every other member's declared dtype and shape,
    from the zip directory and the first bytes of each member."""
    with _parsing():
        archive = zipfile.ZipFile(file)
    with archive:
        infos = _members(path, archive.infolist(), what)
        with _parsing():
            text = _header_text(archive, infos.pop("header"))
        header = _parse_header(text)
        check_header(
            path,
            header,
            what=what,
            kind=kind,
            format_version=format_version,
            allow_missing_kind=allow_missing,
        )
        with _parsing():
            declared = {name: _npy_header(archive, name, info) for name, info in infos.items()}
    return text, header, declared


@contextlib.contextmanager
def _parsing() -> Iterator[None]:
    """Any error of the zip or .npy parsers (BadZipFile, EOFError, zlib.error, a bad .npy
    header, ...) as :class:`_Unreadable`."""
    try:
        yield
    except (_Unreadable, MemoryError):
        raise
    except Exception as err:
        raise _Unreadable(f"{type(err).__name__}: {err}") from None


def _members(path: Any, infos: list[zipfile.ZipInfo], what: str) -> dict[str, zipfile.ZipInfo]:
    """The zip directory by array name: each member an ``.npy``, none twice, a header."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename.removesuffix(".npy")
        if name == info.filename:
            raise _Unreadable(f"member {name!r} is not an .npy array")
        if name in members:
            raise _Unreadable(f"member {info.filename!r} appears twice")
        members[name] = info
    if "header" not in members:
        names = ", ".join(sorted(members)) or "none"
        raise ValueError(f"{path}: not a readable {what} (no header; members: {names})")
    return members


def _npy_header(archive: zipfile.ZipFile, name: str, info: zipfile.ZipInfo) -> Declared:
    """The dtype and shape a member's ``.npy`` header declares, checked against the
    uncompressed size in the zip directory (what reading it would produce)."""
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise _Unreadable(f"array {name!r} has .npy version {version}")
        data_offset = member.tell()
    if dtype.hasobject:  # only a pickle could restore it
        raise _Unreadable(f"array {name!r} holds Python objects")
    declared = Declared(dtype, tuple(int(n) for n in shape))
    if data_offset + declared.nbytes != info.file_size:
        raise _Unreadable(
            f"array {name!r} declares {declared.nbytes} bytes but holds "
            f"{info.file_size - data_offset}"
        )
    return declared


def _header_text(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    """The JSON text of the ``header`` member (a 0-d text array of bounded size)."""
    declared = _npy_header(archive, "header", info)
    if declared.shape != () or declared.dtype.kind != "U":
        raise _Unreadable(f"the header is {declared.dtype} {declared.shape}, not a text")
    if declared.nbytes > MAX_HEADER_BYTES:
        raise _Unreadable(
            f"the header declares {declared.nbytes} bytes, more than the "
            f"{MAX_HEADER_BYTES} a header may take"
        )
    with archive.open(info) as member:
        return str(np.lib.format.read_array(member, allow_pickle=False)[()])


def _describe(dtype: np.dtype | str) -> str:
    if isinstance(dtype, str):
        names = {"f": "float", "i": "int", "u": "uint", "U": "text"}
        return "/".join(names.get(k, k) for k in dtype)
    return str(dtype)


def _check_declared(
    path: Any, declared: dict[str, Declared], expected: Mapping[str, Spec], what: str
) -> None:
    for name, found in declared.items():
        if name not in expected:
            raise ValueError(f"{path}: unexpected array {name!r} in a {what}")
        dtype, shape = expected[name]
        dtype_ok = found.dtype.kind in dtype if isinstance(dtype, str) else found.dtype == dtype
        if not dtype_ok or found.shape != tuple(shape):
            raise ValueError(
                f"{path}: array {name!r} should be {_describe(dtype)} {tuple(shape)} for its "
                f"header, but declares {found.dtype} {found.shape}; the file is damaged "
                "(nothing was read)"
            )


def _check_total(path: Any, declared: dict[str, Declared], what: str, limit: int | None) -> None:
    memory.check_size(path, sum(d.nbytes for d in declared.values()), what, limit)


def _member(data: Any, name: str) -> np.ndarray:
    try:
        return data[name]
    except MemoryError:
        raise
    except Exception as err:  # a bad CRC, a truncated member, ...
        raise _Unreadable(f"array {name!r}: {type(err).__name__}: {err}") from None


def _parse_header(text: str) -> dict[str, Any]:
    """The JSON object of a header's text."""
    try:
        header = json.loads(text)
    except ValueError as err:
        raise _Unreadable(f"unreadable header: {err}") from None
    if not isinstance(header, dict):
        raise _Unreadable("unreadable header: not a JSON object")
    return header


def _check_names(
    path: Any,
    names: set[str],
    what: str,
    required: Iterable[str],
    optional: Iterable[str],
    prefixes: Iterable[str],
) -> None:
    required = list(required)
    missing = [name for name in required if name not in names]
    if missing:
        raise ValueError(f"{path}: incomplete {what}, missing {', '.join(missing)}")
    known = set(required) | set(optional)
    prefixes = tuple(prefixes)
    unexpected = sorted(n for n in names if n not in known and not n.startswith(prefixes))
    if unexpected:
        raise ValueError(f"{path}: unexpected arrays {unexpected} in a {what}")
