"""The environment of a child Python started by a test: the lesde under test comes first on
its path, wherever this run imports it from (a source tree or an installed wheel)."""

from __future__ import annotations

import os
from pathlib import Path

import lesde


def child_env(**extra: str) -> dict[str, str]:
    """``os.environ`` with ``extra`` set and the folder holding the lesde under test first
    on ``PYTHONPATH``."""
    env = dict(os.environ, **extra)
    parent = str(Path(lesde.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [parent, env.get("PYTHONPATH")]))
    return env
