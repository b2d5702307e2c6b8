"""A throw-away monorepo of four images, for the many-images tests and the benchmark.

- `base`: sample-app (its test stage runs the unit tests), built on the bench's base image;
- `api`: built FROM `base` (`FROM <prefix>/base`, no host, no tag: the release passes the base in
  by digest), adding one file;
- `web`, `worker`: sample-app again, each in a folder of its own (their own content, so they are
  images of their own), no test stage.
Each image has its own registry repository under `prefix`, so tests never see each other's tags.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.release_repo import IGNORE_FILE, SAMPLE, ReleaseRepo

SMOKE = '("python3", "-c", "import platform; print(platform.machine())")'
IMAGES = ("base", "api", "web", "worker")

API_DOCKERFILE = """\
# api: built FROM the spec's base image; the release passes it in by digest (a named context).
FROM {prefix}/base
COPY api.txt /srv/api.txt
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=3s CMD ["python3", "-c", "print('ok')"]
CMD ["python3", "-m", "app.server"]
"""

SPEC = """\
from pipeline.spec import BuildPolicy, Image, Registry, ScanPolicy, SignPolicy, Spec, TagPolicy

SMOKE = {smoke}

spec = Spec(
    name="mono",
    url="https://example.com/acme/mono",
    images=(
        Image(
            name="base",
            repository="{prefix}/base",
            context="base",
            target="runtime",
            test_target="test",
            base_image_arg="BASE_IMAGE",
            smoke_test=SMOKE,
        ),
        Image(name="api", repository="{prefix}/api", context="api", smoke_test=SMOKE),
        Image(
            name="web",
            repository="{prefix}/web",
            context="web",
            target="runtime",
            base_image_arg="BASE_IMAGE",
            smoke_test=SMOKE,
        ),
        Image(
            name="worker",
            repository="{prefix}/worker",
            context="worker",
            target="runtime",
            base_image_arg="BASE_IMAGE",
            # WORKER_RELEASE_TAG
        ),
    ),
    registry=Registry(
        host="local",
        username_env="PIPELINE_REGISTRY_USERNAME",
        password_env="PIPELINE_REGISTRY_PASSWORD",
    ),
    build=BuildPolicy(max_parallel=4),
    tags=TagPolicy(release_tag="v{{{{version}}}}"),
    scan=ScanPolicy(ignore_file=".trivyignore.yaml"),
    sign=SignPolicy(attestations=("cyclonedx", "vuln", "provenance")),
)
"""


def _sample(folder: Path, name: str) -> None:
    for item in ("app", "tests", "Dockerfile", ".dockerignore"):
        source = SAMPLE / item
        if source.is_dir():
            shutil.copytree(source, folder / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, folder / item)
    (folder / "app" / "IMAGE.txt").write_text(f"{name}\n")


def write_monorepo(folder: Path, prefix: str) -> Path:
    """The four images and their spec under `folder` (files only); the spec file's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("base", "web", "worker"):
        _sample(folder / name, name)
    api = folder / "api"
    api.mkdir()
    (api / "Dockerfile").write_text(API_DOCKERFILE.format(prefix=prefix))
    (api / "api.txt").write_text("api\n")
    shutil.copy2(SAMPLE / ".dockerignore", api / ".dockerignore")
    (folder / "release.py").write_text(SPEC.format(prefix=prefix, smoke=SMOKE))
    shutil.copy2(IGNORE_FILE, folder / ".trivyignore.yaml")
    return folder / "release.py"


def make_monorepo(folder: Path, prefix: str) -> ReleaseRepo:
    """The four images under `folder`, committed on `main` (no tag yet)."""
    write_monorepo(folder, prefix)
    (folder / ".gitignore").write_text("dist/\n__pycache__/\n")
    repo = ReleaseRepo(folder, f"{prefix}/base")
    repo.git("init", "-q", "-b", "main")
    repo.git("config", "user.email", "tests@example.invalid")
    repo.git("config", "user.name", "tests")
    repo.commit("four images")
    return repo
