"""TOML text for configs: which string names a file, the parse error in words (with a hint
for an unquoted string), and one value written as TOML.

Examples
--------
>>> toml_value(["sde", 0.5])
'["sde", 0.5]'
>>> names_a_file("run.toml"), names_a_file("n_classes = 3")
(True, False)
"""

from __future__ import annotations

import re
from typing import Any

try:
    import tomllib  # noqa: F401 - the examples parse with it
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # noqa: F401

__all__ = ["names_a_file", "toml_error_message", "toml_value"]


def names_a_file(source: str) -> bool:
    """The rule of :meth:`Config.from_toml` for a str: one line that ends in ``.toml`` or
    holds no ``=`` names a file; anything else is TOML text.

    >>> names_a_file("configs/base.toml")
    True
    """
    one_line = "\n" not in source and "\r" not in source
    return one_line and (source.endswith(".toml") or "=" not in source)


# `key = value` where value is a bare word TOML does not know (true, false, inf and nan are
# TOML values): the commonest TOML mistake in a config, an unquoted string.
_UNQUOTED_STRING = re.compile(
    r"^\s*(?P<key>[A-Za-z0-9_.-]+)\s*=\s*(?P<word>(?!(?:true|false|[+-]?inf|[+-]?nan)\b)"
    r"[A-Za-z_][A-Za-z0-9_.-]*)\s*(?:#.*)?$"
)


def toml_error_message(text: str, err: Exception) -> str:
    """The message for TOML ``text`` that failed to parse with ``err``, with a hint when the
    line at fault (or, without a line number, the first such line) is an unquoted string.

    Examples
    --------
    >>> text = "n_classes = 3\\nsignal = linear\\n"
    >>> try:
    ...     tomllib.loads(text)
    ... except tomllib.TOMLDecodeError as err:
    ...     print(toml_error_message(text, err))
    invalid TOML: Invalid value (at line 2, column 10); strings need quotes: signal = "linear"
    """
    lines = text.splitlines()
    at = re.search(r"at line (\d+)", str(err))
    if at and 0 < int(at.group(1)) <= len(lines):
        lines = [lines[int(at.group(1)) - 1]]
    for line in lines:
        bare = _UNQUOTED_STRING.match(line)
        if bare:
            key, word = bare.group("key"), bare.group("word")
            return f'invalid TOML: {err}; strings need quotes: {key} = "{word}"'
    return f"invalid TOML: {err}"


def toml_value(value: Any) -> str:
    """One value (bool, int, float, str or a list of them) as TOML text.

    Examples
    --------
    >>> toml_value([1, 0.5, "sde", True])
    '[1, 0.5, "sde", true]'
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # shortest repr round-trips exactly
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
