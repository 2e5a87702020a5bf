"""``--env-file``: a dotenv file loaded into the environment before the config is read.

So ``QACTUAR_<KEY>`` lines in it set settings, and every other line reaches
the app's ``os.environ`` (in every process: children and workers inherit it).
A variable already in the environment wins over the file, as with
python-dotenv and ``docker run -e``.

The format is the common subset of dotenv files: ``KEY=VALUE`` lines, an
optional ``export`` in front, blank lines and ``#`` comments, a value in
single quotes (taken as it is) or double quotes (``\\n``, ``\\t``, ``\\"``
and ``\\\\`` escapes; it may span lines), or bare (trailing spaces and a
`` #`` comment dropped). No variable expansion. A few dozen lines here instead of
a dependency.
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping

__all__ = ["EnvFileError", "load_env_file", "parse_env_file"]

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


class EnvFileError(ValueError):
    """A line the parser cannot read; the message names the file and the line."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"--env-file {path}, line {line}: {reason}")


def _double_quoted(text: str, start: int) -> tuple[str, int] | None:
    """The value from a ``"`` at ``start``: (value, index after the closing quote)."""
    out = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
        elif c == '"':
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    return None


def parse_env_file(path: str) -> dict[str, str]:
    """The variables ``path`` sets, in order; ``EnvFileError`` for a bad line."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise EnvFileError(path, 0, f"cannot read the file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise EnvFileError(path, 0, f"not UTF-8 text (byte {exc.start})") from None
    found: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        line_no = text.count("\n", 0, pos) + 1
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        line = text[pos:end].strip()
        if not line or line.startswith("#"):
            pos = end + 1
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[len("export") :].lstrip()
        key, sep, rest = line.partition("=")
        key = key.strip()
        if not sep or not _KEY.fullmatch(key):
            raise EnvFileError(path, line_no, f"expected KEY=VALUE, got {line[:60]!r}")
        rest = rest.lstrip()
        if rest.startswith("'"):
            close = rest.find("'", 1)
            if close < 0:
                raise EnvFileError(path, line_no, "the single quote is not closed on its line")
            value, after = rest[1:close], rest[close + 1 :]
        elif rest.startswith('"'):
            # a double-quoted value may go on over several lines
            start = text.index('"', text.index("=", pos))
            done = _double_quoted(text, start)
            if done is None:
                raise EnvFileError(path, line_no, "the double quote is not closed")
            value, stop = done
            end = text.find("\n", stop)
            end = len(text) if end < 0 else end
            after = text[stop:end]
        else:
            value, _, _ = rest.partition(" #")
            value, after = value.strip(), ""
        after = after.strip()
        if after and not after.startswith("#"):
            raise EnvFileError(path, line_no, f"unexpected text after the value: {after[:40]!r}")
        found[key] = value
        pos = end + 1
    return found


def load_env_file(path: str, environ: MutableMapping[str, str] | None = None) -> None:
    """Set the variables of ``path`` that the environment does not already have."""
    environ = os.environ if environ is None else environ
    for key, value in parse_env_file(path).items():
        environ.setdefault(key, value)
