"""The version and placeholder grammar: `{{version}}`-style placeholders and semver releases. Pure.

A leaf module: the tag policy (`pipeline.tags`), the context (`pipeline.context`) and validation
(`pipeline.validate`) all read release tags and tag patterns through these few functions, so the
grammar exists once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import semver

# `{{ name }}`; an empty name is matched too, so validation can point at `{{}}`.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]*)\s*\}\}")
PLACEHOLDERS = ("version", "major", "minor", "patch", "raw")


def parse_version(text: str) -> semver.Version | None:
    try:
        return semver.Version.parse(text)
    except (ValueError, TypeError):
        return None


def release_version(tag: str, pattern: str) -> semver.Version | None:
    """The semver version a git tag names under `pattern` (`v{{version}}`), or None.

    A bare `X.Y.Z` tag is accepted whatever the pattern's prefix and suffix.
    """
    match = PLACEHOLDER.search(pattern)
    if match is None or match.group(1) != "version":
        return None
    prefix, suffix = pattern[: match.start()], pattern[match.end() :]
    candidates = []
    if tag.startswith(prefix) and tag.endswith(suffix) and len(tag) > len(prefix) + len(suffix):
        candidates.append(tag[len(prefix) : len(tag) - len(suffix)])
    candidates.append(tag)
    for candidate in candidates:
        version = parse_version(candidate)
        if version is not None:
            return version
    return None


def exact_release_version(tag: str, pattern: str) -> semver.Version | None:
    """The version a git tag names under `pattern` only when it carries the pattern's own prefix
    and suffix (`api/v1.2.3` under `api/v{{version}}`; a bare `1.2.3` is not): how a monorepo's
    per-image release tag names its one image."""
    match = PLACEHOLDER.search(pattern)
    if match is None or match.group(1) != "version":
        return None
    prefix, suffix = pattern[: match.start()], pattern[match.end() :]
    if not (tag.startswith(prefix) and tag.endswith(suffix)):
        return None
    if len(tag) <= len(prefix) + len(suffix):
        return None
    return parse_version(tag[len(prefix) : len(tag) - len(suffix)])


def exact_release_versions(tags: Iterable[str], pattern: str) -> tuple[str, ...]:
    """Distinct versions among git tag names with exactly `pattern`'s prefix, lowest first."""
    found: dict[str, semver.Version] = {}
    for name in tags:
        version = exact_release_version(name, pattern)
        if version is not None:
            found.setdefault(str(version), version)
    return tuple(str(v) for v in sorted(found.values(), key=lambda v: (v, str(v))))


def release_versions(tags: Iterable[str], pattern: str) -> tuple[str, ...]:
    """Distinct release versions among git tag names, lowest first (semver order)."""
    found: dict[str, semver.Version] = {}
    for name in tags:
        version = release_version(name, pattern)
        if version is not None:
            found.setdefault(str(version), version)
    ordered = sorted(found.values(), key=lambda v: (v, str(v)))
    return tuple(str(v) for v in ordered)


def fill(pattern: str, values: dict[str, str]) -> str:
    """`pattern` with each known placeholder replaced; unknown ones are left as written."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), pattern)
