"""Memory: how much this process may still allocate (every limit that applies: the
machine, ``ulimit``, cgroups), and the refusal to read a file whose arrays would not fit.

Examples
--------
>>> memory = available_memory()
>>> memory is None or memory >= 0
True
>>> check_size("run.npz", 1024, "result file")  # a KiB fits
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["MEMORY_SHARE", "available_memory", "check_size", "memory_limits"]

#: Share of the available memory that the arrays of one file may declare.
MEMORY_SHARE = 0.9


def available_memory(proc: str | os.PathLike = "/proc") -> int | None:
    """Bytes of memory this process can still allocate, or None where nothing says.

    The smallest of every limit that applies (each only where it is set and readable):

    - the machine's ``MemAvailable`` (``/proc/meminfo``);
    - ``ulimit -v`` (RLIMIT_AS) minus the process's current virtual size (``VmSize``), and
      ``ulimit -d`` (RLIMIT_DATA) minus its data size (``VmData``);
    - the memory cgroups the process is in and their ancestors (a container's or a batch
      job's limit): cgroup v2 ``memory.max`` minus ``memory.current``, cgroup v1
      ``memory.limit_in_bytes`` minus ``memory.usage_in_bytes``; page cache that can be
      dropped (``inactive_file`` of ``memory.stat``) counts as free.

    ``proc`` is where procfs is read (``meminfo``, ``self/status``, ``self/cgroup``,
    ``self/mountinfo``, which says where the cgroup file systems are): a folder of fake
    files in tests.

    Examples
    --------
    >>> memory = available_memory()
    >>> memory is None or memory >= 0
    True
    """
    limits = memory_limits(proc)
    return max(min(limits.values()), 0) if limits else None


def memory_limits(proc: str | os.PathLike = "/proc") -> dict[str, int]:
    """What each limit of :func:`available_memory` leaves, in bytes, by where it comes
    from ("MemAvailable", "ulimit -v", "ulimit -d", "cgroup FOLDER"): the ones set and
    readable only.

    Examples
    --------
    >>> all(n >= 0 or name.startswith("ulimit") for name, n in memory_limits().items())
    True
    """
    proc = Path(proc)
    out: dict[str, int] = {}
    meminfo = _meminfo_available(proc)
    if meminfo is not None:
        out["MemAvailable"] = meminfo
    out.update(_rlimit_available(proc))
    out.update(_cgroup_available(proc))
    return out


def _read_text(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(1 << 20)  # procfs and cgroup files are small; never more
    except OSError:
        return None


def _kib_field(text: str | None, key: str) -> int | None:
    """``key: N kB`` of a procfs file, in bytes."""
    for line in (text or "").splitlines():
        if line.startswith(key + ":"):
            try:
                return int(line.split()[1]) * 1024
            except (IndexError, ValueError):
                return None
    return None


def _meminfo_available(proc: Path) -> int | None:
    return _kib_field(_read_text(proc / "meminfo"), "MemAvailable")


def _rlimit_available(proc: Path) -> dict[str, int]:
    """What ``ulimit -v`` and ``ulimit -d`` leave, from the process's sizes now."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return {}
    status = _read_text(proc / "self" / "status")
    out: dict[str, int] = {}
    for name, field, shell in (("RLIMIT_AS", "VmSize", "-v"), ("RLIMIT_DATA", "VmData", "-d")):
        which = getattr(resource, name, None)
        if which is None:
            continue
        soft, _ = resource.getrlimit(which)
        if soft == resource.RLIM_INFINITY:
            continue
        out[f"ulimit {shell}"] = soft - (_kib_field(status, field) or 0)
    return out


#: cgroup v1 writes "no limit" as a huge number (PAGE_COUNTER_MAX pages).
_CGROUP_NO_LIMIT = 1 << 62


def _cgroup_available(proc: Path) -> dict[str, int]:
    """``limit - usage`` of every memory cgroup that limits this process (its own and
    every ancestor's, in cgroup v2 and in v1), usage without reclaimable page cache."""
    memberships = _read_text(proc / "self" / "cgroup")
    mounts = _read_text(proc / "self" / "mountinfo")
    if memberships is None or mounts is None:
        return {}
    out = {}
    for version, root, mount_point in _cgroup_mounts(mounts):
        for line in memberships.splitlines():
            parts = line.split(":", 2)
            if len(parts) != 3:
                continue
            v2 = parts[0] == "0" and parts[1] == ""
            if (version == 2) != v2 or (version == 1 and "memory" not in parts[1].split(",")):
                continue
            for folder in _cgroup_folders(Path(mount_point), root, parts[2]):
                free = _cgroup_free(folder, version)
                if free is not None:
                    out[f"cgroup {folder}"] = free
    return out


def _cgroup_mounts(mountinfo: str) -> list[tuple[int, str, str]]:
    """(version, root, mount point) of the cgroup2 mounts and the v1 memory mounts."""
    out = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if dash < 5 or len(fields) < dash + 4:
            continue
        fstype, options = fields[dash + 1], fields[dash + 3].split(",")
        root, point = (_unescape_mount(f) for f in (fields[3], fields[4]))
        if fstype == "cgroup2":
            out.append((2, root, point))
        elif fstype == "cgroup" and "memory" in options:
            out.append((1, root, point))
    return out


def _unescape_mount(field: str) -> str:
    """mountinfo writes a space, tab, newline or backslash in a path as \\ooo (octal)."""
    for code in ("040", "011", "012", "134"):
        field = field.replace("\\" + code, chr(int(code, 8)))
    return field


def _cgroup_folders(mount_point: Path, root: str, path: str) -> list[Path]:
    """The folder of cgroup ``path`` under a mount of cgroup ``root``, and its ancestors up
    to the mount point. In a container the mount's root may not be a prefix of the path
    (a cgroup namespace shows "/"): then the mount point holds the process's own cgroup."""
    rel = os.path.relpath(path, root) if root != "/" else path.lstrip("/")
    if rel.startswith(".."):
        rel = ""
    folder = (mount_point / rel) if rel not in ("", ".") else mount_point
    if not folder.is_dir():
        folder = mount_point
    folders = [folder]
    while folder != mount_point and mount_point in folder.parents:
        folder = folder.parent
        folders.append(folder)
    return folders


def _cgroup_free(folder: Path, version: int) -> int | None:
    """limit - (usage - inactive page cache) of one cgroup, or None where it has no limit."""
    names = (
        ("memory.max", "memory.current", "inactive_file")
        if version == 2
        else ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
    )
    limit_text, usage_text = (_read_text(folder / name) for name in names[:2])
    try:
        limit = int((limit_text or "").strip())
        usage = int((usage_text or "").strip())
    except ValueError:  # "max" (v2 without a limit), a missing or odd file
        return None
    if limit >= _CGROUP_NO_LIMIT:
        return None
    cache = 0
    for line in (_read_text(folder / "memory.stat") or "").splitlines():
        key, _, value = line.partition(" ")
        if key == names[2] and value.strip().isdigit():
            cache = int(value)
    return limit - max(usage - cache, 0)


def check_size(path: Any, nbytes: int, what: str, limit: int | None = None) -> None:
    """Refuse to read ``nbytes`` of arrays of one file: more than ``limit``, by default
    90 % of :func:`available_memory` (no limit where that is unknown).

    Examples
    --------
    >>> check_size("run.zarr", 3 * 2**30, "store", limit=2**30)
    Traceback (most recent call last):
        ...
    ValueError: run.zarr: the arrays of this store declare 3.00 GiB, more than the 1.00 GiB ...
    """
    if limit is None:
        memory = available_memory()
        limit = None if memory is None else int(MEMORY_SHARE * memory)
        why = " (90 % of the available memory)"
    else:
        why = ""
    if limit is not None and nbytes > limit:
        raise ValueError(
            f"{path}: the arrays of this {what} declare {nbytes / 2**30:.2f} GiB, more than "
            f"the {limit / 2**30:.2f} GiB it may take{why}"
        )
