"""Where slow fixtures and tool caches live between runs (base-image tarballs, Trivy DB, locks).

The location itself is `pipeline.paths.cache_dir` (a base module, so adapters may use it too).
"""

from __future__ import annotations

from pipeline.paths import cache_dir

__all__ = ["cache_dir"]
