"""What `pipeline init` needs from the git repository, read by the git adapter."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RepositoryFacts:
    root: Path  # the work tree's top level
    remotes: dict[str, str] = field(default_factory=dict)  # name -> URL
    branch: str | None = None  # the checked-out branch (also before the first commit)
    default_branch: str | None = None  # origin's HEAD, when known
    files: tuple[str, ...] = ()  # tracked and untracked, not ignored, relative to root
