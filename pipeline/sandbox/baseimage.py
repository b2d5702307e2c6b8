"""The built-in base image: Debian bookworm minbase with python3, for every platform, made with
mmdebstrap (no image registry needed) and pushed as one OCI index.

Root filesystems are cached on disk keyed by everything that shapes them, so only the first run
on a machine pays for them (amd64 about 30 s; arm64 a few minutes under QEMU).
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pipeline import oci, ui
from pipeline.adapters.registry import Manifest, RegistryClient
from pipeline.adapters.runner import Runner
from pipeline.errors import EnvironmentProblem
from pipeline.sandbox.cache import cache_dir

SUITE = "bookworm"
VARIANT = "minbase"
PACKAGES = ("python3",)
PLATFORMS = ("linux/amd64", "linux/arm64")
# Documentation is not needed in a base image and is a fifth of its size.
DPKG_OPTIONS = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
)
RECIPE = "dev.pipeline.base.recipe"  # index annotation: which rootfs recipe it was made from
FORMAT = 1  # bump when the recipe changes in a way the inputs below do not show


def cache_key(
    arch: str,
    packages: tuple[str, ...] = PACKAGES,
    *,
    dpkg_options: tuple[str, ...] = DPKG_OPTIONS,
    apt_options: tuple[str, ...] = (),
) -> str:
    parts: list[object] = [FORMAT, SUITE, VARIANT, arch, sorted(packages), list(dpkg_options)]
    if apt_options:  # absent for the built-in base, whose key (and cache) stays as it was
        parts.append(list(apt_options))
    recipe = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def rootfs_argv(
    arch: str,
    output: Path,
    packages: tuple[str, ...] = PACKAGES,
    *,
    dpkg_options: tuple[str, ...] = DPKG_OPTIONS,
    apt_options: tuple[str, ...] = (),
) -> list[str]:
    argv = ["mmdebstrap", f"--variant={VARIANT}", f"--architectures={arch}"]
    if packages:
        argv.append(f"--include={','.join(sorted(packages))}")
    argv.append("--quiet")
    argv += [f"--dpkgopt={option}" for option in dpkg_options]
    argv += [f"--aptopt={option}" for option in apt_options]
    return [*argv, SUITE, str(output)]


def build_rootfs(
    arch: str,
    runner: Runner,
    packages: tuple[str, ...] = PACKAGES,
    *,
    dpkg_options: tuple[str, ...] = DPKG_OPTIONS,
    apt_options: tuple[str, ...] = (),
) -> Path:
    """The rootfs tarball for `arch`, built once and then taken from the cache."""
    folder = cache_dir() / "base"
    folder.mkdir(parents=True, exist_ok=True)
    key = cache_key(arch, packages, dpkg_options=dpkg_options, apt_options=apt_options)
    output = folder / f"{SUITE}-{arch}-{key}.tar"
    if output.is_file() and output.stat().st_size > 0:
        return output
    partial = output.with_suffix(".partial.tar")
    partial.unlink(missing_ok=True)
    argv = rootfs_argv(arch, partial, packages, dpkg_options=dpkg_options, apt_options=apt_options)
    runner.run(argv, timeout=1800)
    partial.replace(output)
    return output


def _arch(platform: str) -> str:
    return platform.split("/")[1]


def _local_name(arch: str, key: str) -> str:
    return f"pipeline-base/{SUITE}:{arch}-{key}"


BASE_CHANGES = ('CMD ["python3"]',)


def ensure_base_image(
    client: RegistryClient,
    repository: str,
    tag: str,
    runner: Runner,
    *,
    platforms: tuple[str, ...] = PLATFORMS,
    packages: tuple[str, ...] = PACKAGES,
    dpkg_options: tuple[str, ...] = DPKG_OPTIONS,
    apt_options: tuple[str, ...] = (),
    changes: tuple[str, ...] = BASE_CHANGES,
) -> str:
    """Push the base for every platform to `repository:tag` in the client's registry as one OCI
    index and return the index digest. `runner` carries DOCKER_CONFIG for that registry.
    `changes` are the `docker import --change` instructions for the image config; the other
    options shape the root filesystem (`rootfs_argv`).

    The index is annotated with the recipe's key; when the registry already holds an index with
    that key, nothing is pushed again."""
    options = {"dpkg_options": dpkg_options, "apt_options": apt_options}
    keys = {p: cache_key(_arch(p), packages, **options) for p in platforms}
    if changes != BASE_CHANGES:  # the built-in base's key stays as it was
        changed = hashlib.sha256(json.dumps(list(changes)).encode()).hexdigest()[:8]
        keys = {p: f"{key}-{changed}" for p, key in keys.items()}
    recipe = ",".join(f"{p}={keys[p]}" for p in platforms)
    existing = client.resolve(repository, tag)
    if existing is not None and existing.document.get("annotations", {}).get(RECIPE) == recipe:
        return existing.digest
    missing = [p for p in platforms if not _image_exists(runner, _local_name(_arch(p), keys[p]))]
    if missing:
        label = f"rootfs for {tag} on {', '.join(missing)} (cached after the first run)"
        with ui.progress(label), ThreadPoolExecutor(max_workers=len(missing)) as pool:
            tarballs = dict(
                zip(
                    missing,
                    pool.map(
                        lambda p: build_rootfs(_arch(p), runner, packages, **options), missing
                    ),
                    strict=True,
                )
            )
        for platform, tarball in tarballs.items():
            runner.run(
                [
                    "docker",
                    "import",
                    "--platform",
                    platform,
                    *[arg for change in changes for arg in ("--change", change)],
                    str(tarball),
                    _local_name(_arch(platform), keys[platform]),
                ],
                quiet=True,
            )
    target = f"{client.host}/{repository}:{tag}"
    entries: list[dict[str, Any]] = []
    with ui.progress(f"{tag} image to {target}"):
        for platform in platforms:
            arch = _arch(platform)
            per_arch = f"{target}-{arch}"
            local = _local_name(arch, keys[platform])
            runner.run(["docker", "tag", local, per_arch], quiet=True)
            runner.run(["docker", "push", "--quiet", per_arch], quiet=True)
            entries += _platform_entries(client, repository, f"{tag}-{arch}", platform)
        body = oci.merge_indexes([{"manifests": entries}], {RECIPE: recipe})
        digest = oci.digest_of(body)
        client.put_manifest(repository, tag, Manifest(digest, oci.OCI_INDEX, body))
    return digest


def _platform_entries(
    client: RegistryClient, repository: str, reference: str, platform: str
) -> list[dict[str, Any]]:
    """Index entries for what `docker push` stored: a manifest, or an index around one."""
    manifest = client.resolve(repository, reference)
    if manifest is None:
        raise EnvironmentProblem(f"{client.host}/{repository}:{reference}: pushed, yet missing")
    if manifest.is_index:
        return [
            entry
            for entry in manifest.document.get("manifests", [])
            if oci.Descriptor.parse(entry).platform == platform
        ]
    os_name, arch, *variant = platform.split("/")
    entry: dict[str, Any] = {
        "mediaType": manifest.media_type,
        "digest": manifest.digest,
        "size": len(manifest.body),
        "platform": {"os": os_name, "architecture": arch},
    }
    if variant:
        entry["platform"]["variant"] = variant[0]
    return [entry]


def _image_exists(runner: Runner, name: str) -> bool:
    return runner.run(["docker", "image", "inspect", name], check=False, quiet=True).exit_code == 0
