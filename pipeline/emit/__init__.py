"""CI definitions generated from the spec: GitHub Actions and GitLab CI.

`generate()` is pure apart from naming the spec relative to the repository: the same spec gives
byte-identical files.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from pipeline.emit import github, gitlab
from pipeline.emit.yamldump import dump
from pipeline.specload import LoadedSpec

OUT_DIR = PurePosixPath("workflows")
GITHUB_FILE = OUT_DIR / "github-release.yml"
GITLAB_FILE = OUT_DIR / "gitlab-ci.yml"
# Where `pipeline workflows --install` puts them for the two CI services.
INSTALL_TARGETS = {
    GITHUB_FILE: PurePosixPath(".github/workflows/release.yml"),
    GITLAB_FILE: PurePosixPath(".gitlab-ci.yml"),
}


def spec_path_in(loaded: LoadedSpec, repo_root: Path) -> str:
    try:
        return loaded.path.relative_to(repo_root.resolve()).as_posix()
    except ValueError:
        return loaded.path.name


def generate(loaded: LoadedSpec, repo_root: Path) -> dict[PurePosixPath, str]:
    spec_path = spec_path_in(loaded, repo_root)
    header = f"generated from {spec_path}; do not edit (run: nox -s workflows)"
    return {
        GITHUB_FILE: dump(github.workflow(loaded.spec, spec_path).to_data(), header),
        GITLAB_FILE: dump(gitlab.pipeline(loaded.spec, spec_path).to_data(), header),
    }
