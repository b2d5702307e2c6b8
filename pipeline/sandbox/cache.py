"""Where slow fixtures and tool caches live between runs (base-image tarballs, Trivy DB, locks)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pipeline"
