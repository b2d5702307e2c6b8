""".dockerignore, as Docker reads it (moby's patternmatcher). Pure: text and paths in.

- one pattern per line; `#` starts a comment line; blank lines are ignored; leading and trailing
  white space and a leading `/` are dropped, the pattern is cleaned (`a/./b` is `a/b`);
- `*` matches within one path segment, `?` one character, `[...]` a class, `**` any number of
  segments (also none);
- a pattern that matches a directory excludes everything below it;
- `!pattern` re-includes what an earlier pattern excluded; the last matching line wins.

A Dockerfile-specific ignore file (`Dockerfile.dockerignore` next to the Dockerfile) replaces
the context's `.dockerignore`, as BuildKit does.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pattern:
    text: str
    exclusion: bool  # `!pattern`: re-include
    regex: re.Pattern[str]


def _translate(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            if pattern[i : i + 2] == "**":
                # `**/` is any number of segments; a trailing `**` is everything below.
                if pattern[i : i + 3] == "**/":
                    out.append("(?:.*/)?")
                    i += 3
                    continue
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end]
                negate = body.startswith("^")
                body = (body[1:] if negate else body).replace("\\", "\\\\")
                out.append(("[^" if negate else "[") + body + "]")
                i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z")


def parse(text: str) -> list[Pattern]:
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
        cleaned = posixpath.normpath(line.lstrip("/")) if line.lstrip("/") else ""
        if not cleaned or cleaned == ".":
            continue
        patterns.append(Pattern(line, exclusion, _translate(cleaned)))
    return patterns


def _matches(pattern: Pattern, path: str) -> bool:
    """The pattern matches the path or one of its parent directories."""
    parts = path.split("/")
    return any(pattern.regex.match("/".join(parts[:n])) for n in range(1, len(parts) + 1))


def excluded(path: str, patterns: Sequence[Pattern]) -> bool:
    """Whether `path` (relative, `/`-separated) is left out of the build context."""
    result = False
    for pattern in patterns:
        if _matches(pattern, path):
            result = not pattern.exclusion
    return result


def ignore_file(context: Path, dockerfile: Path) -> Path | None:
    """The ignore file that applies: `<Dockerfile>.dockerignore`, else the context's."""
    specific = dockerfile.with_name(dockerfile.name + ".dockerignore")
    if specific.is_file():
        return specific
    general = context / ".dockerignore"
    return general if general.is_file() else None


def has_exceptions(patterns: Sequence[Pattern]) -> bool:
    return any(p.exclusion for p in patterns)
