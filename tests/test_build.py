"""The build: a second ``pip install`` (any extra) reuses the compiled core.

pip builds lesde in an isolated environment, a new temporary folder holding pybind11 and
Eigen every time, and scikit-build-core then deletes ``<build>/CMakeCache.txt`` and
``<build>/CMakeFiles`` of the persistent build folder (pyproject.toml's ``build-dir``).
Every install compiled the whole core again (3 minutes on two cores) because the compile
lines named the temporary folder and the objects lived in ``<build>/CMakeFiles``. This test
configures the project twice as two installs do, from two copies of the build requirements
in two folders, without compiling anything (a few seconds), and checks what Ninja decides
on: the same compile lines, naming neither folder, objects outside ``<build>/CMakeFiles``,
and staged headers left untouched by the second configure. A full ``pip install`` twice is
what the check stands for (measured: the second one compiles nothing).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if not (ROOT / "CMakeLists.txt").is_file():
    pytest.skip(
        "the sources are not here (the tests of an installed wheel run without them)",
        allow_module_level=True,
    )


def _cmake() -> str | None:
    path = shutil.which("cmake")
    if path is None and importlib.util.find_spec("cmake") is not None:  # the PyPI wheel
        import cmake

        path = str(Path(cmake.CMAKE_BIN_DIR) / "cmake")
    if path is None:
        return None
    version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"(\d+)\.(\d+)", version)
    return path if found and tuple(map(int, found.groups())) >= (3, 21) else None


def _build_requirements() -> list[Path]:
    """The folders of site-packages that pip's build environment would hold."""
    import cmeel
    import pybind11

    site = Path(cmeel.__file__).resolve().parents[1]
    return [Path(pybind11.__file__).resolve().parent, site / "cmeel", site / "cmeel.prefix"]


def _configure(cmake: str, build: Path, env_dir: Path) -> dict[str, str]:
    """Configure ``build`` as a pip install from the build environment ``env_dir`` does;
    return each object's compile line."""
    for name in ("CMakeCache.txt", "CMakeFiles"):  # what scikit-build-core clears
        target = build / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    env = {**os.environ, "PYTHONPATH": str(env_dir)}  # `import cmeel` finds this copy
    proc = subprocess.run(
        [
            cmake,
            "-S",
            str(ROOT),
            "-B",
            str(build),
            *generator,
            "-DCMAKE_BUILD_TYPE=Release",
            "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON",
            "-DLESDE_CUDA=OFF",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={env_dir / 'pybind11' / 'share' / 'cmake' / 'pybind11'}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    entries = json.loads((build / "compile_commands.json").read_text())
    return {e["output"]: e.get("command") or " ".join(e["arguments"]) for e in entries}


def test_a_new_build_environment_compiles_nothing_again(tmp_path):
    cmake = _cmake()
    if cmake is None or importlib.util.find_spec("cmeel") is None:
        pytest.skip("needs cmake >= 3.21, pybind11 and cmeel-eigen (the test extra has them)")
    envs = [tmp_path / "pip-build-env-a", tmp_path / "pip-build-env-b"]
    for env_dir in envs:
        for folder in _build_requirements():
            shutil.copytree(folder, env_dir / folder.name)
    build = tmp_path / "build"

    first = _configure(cmake, build, envs[0])
    staged = {p: p.stat().st_mtime_ns for p in (build / "staged-headers").rglob("*.h*")}
    second = _configure(cmake, build, envs[1])

    assert first, "no compile lines: the project defines no objects?"
    named = [(o, str(e)) for o, line in second.items() for e in envs if str(e) in line]
    assert not named, f"compile lines name the temporary build environment: {named[:2]}"
    assert first == second, "a second install changes the compile lines: all is compiled again"
    cleared = build / "CMakeFiles"
    wiped = [o for o in second if Path(o).is_relative_to(cleared)]
    assert not wiped, f"objects under {cleared}, which a new build environment deletes: {wiped}"
    assert staged, "no staged headers: the compile lines use the build environment's"
    touched = [p for p, mtime in staged.items() if p.stat().st_mtime_ns != mtime]
    assert not touched, f"the second configure rewrote unchanged headers: {touched[:3]}"
