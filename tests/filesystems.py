"""Folders where writing fails, for the tests of lesde's outputs: read-only, or full.

Real ones: a folder without write permission (a non-root user), a read-only or a 64 KiB
tmpfs mount (root, where mounting is allowed). Where the system offers neither, the test
that asked is skipped with the reason; the in-process tests that fake a full disk run
everywhere.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from pathlib import Path

import pytest


def _mount_tmpfs(folder: Path, options: str) -> bool:
    if os.geteuid() != 0:
        return False
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


@contextlib.contextmanager
def read_only_folder(tmp_path: Path):
    """A folder in which no file can be created, holding one file ``old.npz``."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    (folder / "old.npz").write_bytes(b"an older result")
    if os.geteuid() != 0:  # root ignores permissions: it needs a read-only mount
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    content = (folder / "old.npz").read_bytes()
    (folder / "old.npz").unlink()
    if not _mount_tmpfs(folder, "size=64k"):
        pytest.skip("running as root and cannot mount a tmpfs: no read-only folder")
    try:
        (folder / "old.npz").write_bytes(content)
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@contextlib.contextmanager
def full_folder(tmp_path: Path, size: str = "64k"):
    """A folder on a file system of ``size`` (a tmpfs), for files that do not fit."""
    folder = tmp_path / "full"
    folder.mkdir()
    if not _mount_tmpfs(folder, f"size={size}"):
        pytest.skip("cannot mount a small tmpfs here (needs root): no full disk to write to")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def device_node(folder: Path) -> Path:
    """A character device to offer as an output: a private copy of /dev/null made in
    ``folder`` where this user may (root), else /dev/null itself (which a user who cannot
    make device nodes cannot replace either). A test that goes wrong as root then damages
    its own copy, never the system's /dev/null."""
    node = folder / "null-device"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        return Path(os.devnull)
    return node
