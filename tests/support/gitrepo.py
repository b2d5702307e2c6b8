"""A git work tree the tests write and commit in, through the git CLI (what users run)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass
class GitRepo:
    path: Path

    def git(self, *args: str) -> str:
        out = subprocess.run(
            ["git", *args], cwd=self.path, check=True, capture_output=True, text=True
        )
        return out.stdout.strip()

    def commit(self, message: str) -> str:
        """Everything in the work tree committed; the new commit's SHA."""
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")
