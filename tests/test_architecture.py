"""The package keeps its shape: layers without cycles, private names kept private.

- The import-linter contract in pyproject.toml ([tool.importlinter]): every module of lesde
  sits in a layer and imports only from the layers below it, so no cycle or upward import
  can come back unnoticed.
- No module of lesde imports a private name (``_name``) from another lesde module, or
  reaches for one as ``module._name``: what a module offers to others is public, with a
  docstring. The compiled core ``_core`` is the one private module others use.
- No module takes anything but ``_core`` and submodules from the package root
  (``lesde/__init__.py``): the root imports every module, so ``from . import __version__``
  in a module is an upward import (``lesde.version`` is the place for it). import-linter
  cannot see this one (see the comment in pyproject.toml), so it is checked here.
- ``import lesde`` does not import PyTorch (the ``nn`` extra stays optional).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
from processes import child_env

import lesde

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
PACKAGE_DIR = Path(lesde.__file__).resolve().parent

# Imports that break the rules above in modules rewritten elsewhere, kept working until
# those are updated: (importing module or package, module imported from, name). An entry
# that matches nothing any more fails the test below: then delete it.
KNOWN_EXCEPTIONS: set[tuple[str, str, str]] = set()


# ----------------------------------------------------------------------------- layers
def test_import_contracts_hold():
    # The config file as an argument and --no-logo need import-linter >= 2.17 (test extra).
    lint = Path(sysconfig.get_path("scripts")) / "lint-imports"
    assert lint.exists(), f"no {lint}: install the test extra, pip install '.[test]'"
    run = subprocess.run(
        [str(lint), str(PYPROJECT), "--no-cache", "--no-logo"],
        capture_output=True,
        text=True,
        cwd=PYPROJECT.parent,
        env=child_env(),
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, f"an import contract of pyproject.toml is broken:\n{report}"
    assert "KEPT" in report and "BROKEN" not in report, report


# ----------------------------------------------------------------------------- private names
def _module_name(path: Path, package_dir: Path, package: str) -> str:
    parts = list(path.relative_to(package_dir).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def _imported_from(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute name of the module a ``from ... import`` statement imports from."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_submodule(package_dir: Path, name: str) -> bool:
    return (package_dir / f"{name}.py").exists() or (package_dir / name / "__init__.py").exists()


def rule_breaks(package_dir: Path, package: str) -> list[tuple[str, str, str, str]]:
    """(importer, module imported from, name, where) for every import that breaks the rules
    of this file's docstring, in the package at ``package_dir``."""
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        module = _module_name(path, package_dir, package)
        is_package = path.name == "__init__.py"
        where = f"{path.relative_to(package_dir.parent)}"
        modules_by_local_name = {}  # names this file binds to modules of the package
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = _imported_from(node, module, is_package)
                if source != package and not source.startswith(package + "."):
                    continue
                for alias in node.names:
                    name, local = alias.name, alias.asname or alias.name
                    if source == package and _is_submodule(package_dir, name):
                        modules_by_local_name[local] = f"{package}.{name}"
                        continue
                    if source == f"{package}._core" or name == "_core" or source == module:
                        continue
                    if source == package or _is_private(name):
                        found.append((module, source, name, f"{where}:{node.lineno}"))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith(package + ".") and alias.asname:
                        modules_by_local_name[alias.asname] = alias.name
        for node in ast.walk(tree):  # module._name on a module of the package
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in modules_by_local_name
                and _is_private(node.attr)
                and not modules_by_local_name[node.value.id].endswith("._core")
            ):
                source = modules_by_local_name[node.value.id]
                found.append((module, source, node.attr, f"{where}:{node.lineno}"))
    return found


def _excused(rule_break: tuple[str, str, str, str], exception: tuple[str, str, str]) -> bool:
    importer, source, name, _ = rule_break
    owner, exc_source, exc_name = exception
    in_owner = importer == owner or importer.startswith(owner + ".")
    return in_owner and (source, name) == (exc_source, exc_name)


def test_no_module_takes_private_names_or_names_from_the_package_root():
    found = rule_breaks(PACKAGE_DIR, "lesde")
    unexcused = [b for b in found if not any(_excused(b, e) for e in KNOWN_EXCEPTIONS)]
    lines = [f"  {where}: {imp} takes {name!r} from {src}" for imp, src, name, where in unexcused]
    assert not unexcused, (
        "modules take private names from other modules, or names from the package root "
        "(make the name public where it is defined, or move it below its users):\n"
        + "\n".join(lines)
    )
    stale = [e for e in KNOWN_EXCEPTIONS if not any(_excused(b, e) for b in found)]
    assert not stale, f"these KNOWN_EXCEPTIONS no longer occur; delete them: {sorted(stale)}"


def test_the_private_name_check_finds_what_it_should(tmp_path):
    """The check above on a small package that breaks each rule once (and keeps it once)."""
    package = tmp_path / "toy"
    package.mkdir()
    sources = {
        "__init__.py": "from .a import public\n__version__ = '1'\n",
        "a.py": "def public(): ...\ndef _secret(): ...\n",
        "b.py": """
            from . import _core, a
            from . import a as alias
            from .a import _secret, public
            from toy import __version__
            import toy.a as aa


            def f():
                from ._core import _internal  # the compiled core is exempt
                return a._secret, alias._secret, aa._secret, a.__name__, _core._x
            """,
    }
    for name, text in sources.items():
        (package / name).write_text(textwrap.dedent(text))
    found = rule_breaks(package, "toy")
    assert {(imp, src, name) for imp, src, name, _ in found} == {
        ("toy.b", "toy.a", "_secret"),
        ("toy.b", "toy", "__version__"),
    }, found
    # from .a import _secret; a._secret, alias._secret, aa._secret; from toy import __version__
    assert len(found) == 5, found


# ----------------------------------------------------------------------------- optional torch
def test_import_lesde_does_not_need_torch():
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # as if not installed: importing it raises\n"
        "import lesde, lesde.data, lesde.sim.result, lesde.analysis.estimate\n"
        "print('ok')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=child_env()
    )
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


@pytest.mark.parametrize(
    "statement",
    ["import lesde.nn.network", "import lesde.nn.training", "from lesde.nn import LeNet"],
)
def test_without_torch_the_network_modules_say_how_to_get_it(statement):
    """The records and ensembles load without PyTorch (lesde.nn imports without it); the
    network, its training and their names say how to get it."""
    code = f"import sys\nsys.modules['torch'] = None\nimport lesde.nn\n{statement}\n"
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=child_env()
    )
    assert run.returncode != 0 and "pip install 'lesde[nn]'" in run.stderr, run.stderr
