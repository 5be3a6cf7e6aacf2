"""Crafted files are refused in one line before they cost memory.

The reproducers of the issue, built here byte by byte: a zip member deflated from 2 GiB of
zeros (a 2 MB file), a result whose header claims ``steps = 2**31 - 1`` with
``record_every = 1`` (its record grid alone would take 16 GiB), and an ``.npy`` header
declaring shape ``(10**12, 3)``. Each goes to every entry point that reads such a file
(``lesde.load``, ``lesde plot``, ``lesde.resume``, ``lesde resume``) in one child process
whose address space is capped, so that a reader that would allocate cannot harm the
machine; the child reports each refusal and its peak resident memory.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest

import lesde
from lesde.sim import checkpoint as ck

#: Peak resident memory a refusal may add to the child's, in MiB: the zip directory, a few
#: .npy headers and the JSON header, against 2 GiB (or 16 GiB) for reading the file.
REFUSAL_MIB = 48
BOMB_BYTES = 2 * 2**30
BLOCK = 2**24


# ---------------------------------------------------------------------- a zip, by hand
class DeflatedZeros:
    """A zip member: ``prefix`` and then ``BOMB_BYTES`` of zeros, deflated. After a full
    flush every 16 MiB block of zeros deflates to the same bytes, so the 2 MB stream is
    written without compressing 2 GiB (the CRC still covers every byte)."""

    def __init__(self, prefix: bytes, zeros: int = BOMB_BYTES):
        deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
        self.head = deflate.compress(prefix) + deflate.flush(zlib.Z_FULL_FLUSH)
        self.body = deflate.compress(bytes(BLOCK)) + deflate.flush(zlib.Z_FULL_FLUSH)
        assert self.body == deflate.compress(bytes(BLOCK)) + deflate.flush(zlib.Z_FULL_FLUSH)
        self.tail = deflate.flush()
        self.blocks = zeros // BLOCK
        self.crc = zlib.crc32(prefix)
        for _ in range(self.blocks):
            self.crc = zlib.crc32(bytes(BLOCK), self.crc)
        self.size = len(prefix) + self.blocks * BLOCK
        self.compressed = len(self.head) + self.blocks * len(self.body) + len(self.tail)

    def write(self, f) -> None:
        f.write(self.head)
        for _ in range(self.blocks):
            f.write(self.body)
        f.write(self.tail)


class ClaimedSize:
    """A stored member whose zip directory claims ``size`` uncompressed bytes (a zip64
    size field) while the archive holds only ``data``."""

    def __init__(self, data: bytes, size: int):
        self.data, self.size = data, size


def write_zip(path: Path, members: dict[str, bytes | DeflatedZeros | ClaimedSize]) -> None:
    """A zip as np.savez writes one: bytes are stored, a :class:`DeflatedZeros` deflated,
    a :class:`ClaimedSize` stored under a false size."""
    directory = []
    with open(path, "wb") as f:
        for name, member in members.items():
            offset, encoded, extra = f.tell(), name.encode(), b""
            if isinstance(member, DeflatedZeros):
                method, crc, csize, size = 8, member.crc, member.compressed, member.size
            elif isinstance(member, ClaimedSize):
                method, crc, csize, size = 0, zlib.crc32(member.data), len(member.data), 2**32 - 1
                extra = struct.pack("<HHQ", 1, 8, member.size)  # zip64: the real "size"
                member = member.data
            else:
                method, crc, csize, size = 0, zlib.crc32(member), len(member), len(member)
            fields = (method, 0, 0x21, crc, csize, size, len(encoded))
            f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, *fields, 0) + encoded)
            member.write(f) if isinstance(member, DeflatedZeros) else f.write(member)
            central = (0x02014B50, 45, 45, 0, *fields, len(extra), 0, 0, 0, 0, offset)
            directory.append(struct.pack("<IHHHHHHIIIHHHHHII", *central) + encoded + extra)
        start = f.tell()
        for entry in directory:
            f.write(entry)
        size = f.tell() - start
        count = len(directory)
        f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, size, start, 0))


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_header(dtype: str, shape: tuple) -> bytes:
    """The .npy magic and header of an array that is not there."""
    buffer = io.BytesIO()
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def members_of(path: Path) -> dict[str, bytes]:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def with_huge_record_grid(header: dict) -> dict:
    """The header with steps = 2**31 - 1 and record_every = 1 (records at every step)."""
    cfg = lesde.Config.from_toml(header["config_toml"])
    return {**header, "config_toml": cfg.replace(steps=2**31 - 1, record_every=1).to_toml()}


@pytest.fixture(scope="module")
def crafted(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("crafted")
    cfg = lesde.Config(n_classes=3, n_per_class=10, steps=20, record_every=10, seed=1)
    lesde.simulate(cfg, progress=False, checkpoint=folder / "good.ckpt").save(folder / "good.npz")
    result, ckpt = members_of(folder / "good.npz"), members_of(folder / "good.ckpt")
    bomb = DeflatedZeros(npy_header("<f8", (BOMB_BYTES // 8,)))
    files = {}

    def craft(name: str, members: dict) -> None:
        files[name] = folder / name
        write_zip(files[name], members)

    # 1. An extra member deflated from 2 GiB of zeros. A result may hold any metric__*
    # array, so the name alone does not give it away; in a checkpoint it takes the place
    # of the features (an extra name there is refused by name).
    craft("bomb.npz", {**result, "metric__pad.npy": bomb})
    craft("bomb.ckpt", {**ckpt, "features.npy": bomb})
    # 2. A header claiming 2**31 records; the checkpoint's digest is made to match.
    header = json.loads(str(np.load(folder / "good.npz")["header"]))
    craft(
        "steps.npz",
        {**result, "header.npy": npy(np.array(json.dumps(with_huge_record_grid(header))))},
    )
    with np.load(folder / "good.ckpt") as data:
        arrays = {name: data[name] for name in data.files if name not in ("header", "sha256")}
        text = json.dumps(with_huge_record_grid(json.loads(str(data["header"]))), sort_keys=True)
    craft(
        "steps.ckpt",
        {
            **ckpt,
            "header.npy": npy(np.array(text)),
            "sha256.npy": npy(np.array(ck.checkpoint_digest(text, arrays))),
        },
    )
    # 3. An .npy header declaring (10**12, 3) doubles, followed by two rows of data.
    huge = npy_header("<f8", (10**12, 3)) + bytes(48)
    craft("shape.npz", {**result, "features.npy": huge})
    craft("shape.ckpt", {**ckpt, "features.npy": huge})
    # ... and the same where the zip directory claims the 24 TB that the header declares.
    claimed = ClaimedSize(huge, len(huge) - 48 + 24 * 10**12)
    craft("claimed.npz", {**result, "features.npy": claimed})
    craft("claimed.ckpt", {**ckpt, "features.npy": claimed})
    return files


CHILD = textwrap.dedent("""
    import contextlib, io, json, resource, sys
    import lesde
    from lesde.cli import main

    def peak_mib():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def vm_mib():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmSize")) / 1024

    def call(entry, path):
        if entry in ("lesde plot", "lesde resume"):
            err = io.StringIO()
            args = [entry.split()[1], path] + (["--out", path + ".d"] if "plot" in entry else [])
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main(args)
            return f"exit {code}: {err.getvalue()}"
        try:
            (lesde.load if entry == "lesde.load" else lesde.resume)(path)
        except Exception as e:
            return f"{type(e).__name__}: {e}"
        return "accepted"

    cases = json.loads(sys.argv[1])
    call(*cases[0])  # warm up: every module a refusal may import is loaded now
    base = peak_mib()
    # Cap the address space: a reader that allocates gets a MemoryError, not the machine.
    limit = int((vm_mib() + 1024) * 2**20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = []
    for entry, path in cases:
        try:
            message = call(entry, path)
        except BaseException as e:
            message = f"uncaught {type(e).__name__}: {e}"
        out.append([entry, path, message, peak_mib() - base])
    print(json.dumps(out))
""")


def test_crafted_files_are_refused_in_one_line_before_reading(crafted, tmp_path):
    cases = []
    for name, path in crafted.items():
        entries = (
            ("lesde.load", "lesde plot")
            if name.endswith(".npz")
            else ("lesde.resume", "lesde resume")
        )
        cases += [[entry, str(path)] for entry in entries]
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    failures = []
    for entry, path, message, grown in json.loads(proc.stdout.splitlines()[-1]):
        what = f"{entry} {Path(path).name}"
        # The CLI exits 2 when a run does not fit in memory (as `lesde run` does), else 1.
        if not message.startswith(("ValueError", "InsufficientMemoryError", "exit 1", "exit 2")):
            failures.append(
                f"{what} was not refused with a ValueError / exit 1 or 2: {message[:200]}"
            )
        elif message.rstrip("\n").count("\n") or path not in message:
            failures.append(f"{what}: the refusal is not one line naming the file: {message}")
        if grown >= REFUSAL_MIB:
            failures.append(f"{what} took {grown:.0f} MiB more before refusing it")
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------------- FIFOs as inputs
@pytest.fixture(scope="module")
def lesde_files(tmp_path_factory):
    """A result, a checkpoint and (with zarr) a Zarr store, made once."""
    folder = tmp_path_factory.mktemp("inputs")
    small = dict(n_classes=2, n_per_class=5, steps=4, record_every=2, threads=1)
    res = lesde.simulate(**small, checkpoint=folder / "run.ckpt", progress=False)
    res.save(folder / "run.npz")
    if importlib.util.find_spec("zarr") is not None:
        lesde.simulate(**small, zarr_store=folder / "run.zarr", progress=False)
    return folder


def _cli(*args: str) -> str:
    from lesde.cli import main

    code = main(list(args))
    return f"exit {code}"


def _sweep_point(tmp_path: Path, fifo: Path) -> str:
    base = lesde.Config(n_classes=2, n_per_class=5, t_end=0.1, threads=1)
    first = lesde.sweep(base, {"alpha": [1.0]}, out_dir=tmp_path / "sw", progress=False)
    point = Path(first.meta["point_files"][0])
    point.unlink()
    os.mkfifo(point)
    again = lesde.sweep(base, {"alpha": [1.0]}, out_dir=tmp_path / "sw", progress=False)
    return str(again.table["message"].iloc[0])


def _zarr_with_fifo(files: Path, tmp_path: Path, name: str) -> Path:
    """A copy of the lesde store with its file ``name`` (or its first chunk) a FIFO."""
    pytest.importorskip("zarr")
    store = tmp_path / "run.zarr"
    shutil.copytree(files / "run.zarr", store)
    if name == "chunk":
        chunks = sorted((store / "class_means").rglob("*"))
        chunk = next(p for p in chunks if p.is_file() and p.name not in ("zarr.json", ".zarray"))
        name = str(chunk.relative_to(store))
    (store / name).unlink()
    os.mkfifo(store / name)
    return store


#: Each reader of a path the user gives: (what it reads, the call, what its refusal says).
FIFO_READERS = {
    "lesde.load": lambda f, fifo, tmp: lesde.load(fifo),
    "lesde plot": lambda f, fifo, tmp: _cli("plot", str(fifo), "--out", str(tmp)),
    "lesde.resume": lambda f, fifo, tmp: lesde.resume(fifo),
    "read_checkpoint": lambda f, fifo, tmp: ck.read_checkpoint(fifo),
    "lesde resume": lambda f, fifo, tmp: _cli("resume", str(fifo), "--out", str(tmp / "r.npz")),
    "Config.from_toml": lambda f, fifo, tmp: lesde.Config.from_toml(fifo),
    "lesde run CONFIG": lambda f, fifo, tmp: _cli("run", str(fifo), "--out", str(tmp / "r.npz")),
    "lesde validate CONFIG": lambda f, fifo, tmp: _cli("validate", str(fifo)),
    "lesde sweep CONFIG": lambda f, fifo, tmp: _cli("sweep", str(fifo), "--out", str(tmp)),
    "lesde.load_zarr zarr.json": lambda f, fifo, tmp: lesde.load_zarr(
        _zarr_with_fifo(f, tmp, "zarr.json")
    ),
    "lesde.load_zarr chunk": lambda f, fifo, tmp: lesde.load_zarr(_zarr_with_fifo(f, tmp, "chunk")),
    "sweep point file": lambda f, fifo, tmp: _sweep_point(tmp, fifo),
}


@pytest.mark.parametrize("reader", FIFO_READERS)
def test_a_fifo_given_as_any_input_is_refused_in_one_line_without_blocking(
    reader, lesde_files, tmp_path, capsys
):
    """A FIFO at an input path blocked its reader forever (a config file, a Zarr store's
    metadata or chunks, ...). Every reader of a user-given path now refuses it at once, in
    one line that says it is a FIFO. The reader runs in a thread, so that a reader that
    blocks fails this test instead of hanging the suite."""
    fifo = tmp_path / "input"
    os.mkfifo(fifo)
    outcome: dict = {}

    def read() -> None:
        try:
            outcome["value"] = FIFO_READERS[reader](lesde_files, fifo, tmp_path)
        except BaseException as err:  # noqa: BLE001 - reported below
            outcome["error"] = err

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(20)
    if thread.is_alive():  # blocked on a FIFO: open their other ends, so it can return
        for path in tmp_path.rglob("*"):
            if path.is_fifo():
                try:
                    os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:
                    pass
        thread.join(10)
        pytest.fail(f"{reader} blocked on a FIFO")
    if "error" in outcome:
        err = outcome["error"]
        if isinstance(err, pytest.skip.Exception):
            raise err
        assert isinstance(err, (ValueError, OSError)), repr(err)
        message = str(err)
    else:
        value = outcome["value"]
        captured = capsys.readouterr()
        message = captured.err if isinstance(value, str) and value.startswith("exit") else value
        if isinstance(value, str) and value.startswith("exit"):
            assert value == "exit 1", (value, captured.err)
            assert message.startswith("lesde: error: "), message
    message = str(message).rstrip("\n")
    assert "\n" not in message, message
    assert "a FIFO, not a regular file" in message or "is a FIFO" in message, message
