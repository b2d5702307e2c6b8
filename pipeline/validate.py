"""Spec validation: every mistake becomes ONE line naming the dotted field, the bad value and what
would be right, with a close spelling where there is one::

    images[0].platforms[1]: 'linux/amd65' is not a platform; did you mean 'linux/amd64'?

Two passes: first the types of every field (a `str` where a tuple belongs, an `int` where a `str`
belongs, an unknown `Literal` value), read from the dataclass annotations; then the values and
the combinations. The first problem found is raised as a `SpecError` (exit 2). The only file
system access is checking that build contexts, Dockerfiles and the ignore file exist (relative
to the spec file's folder) and reading a Dockerfile's stage names for `target`/`test_target`.

Unknown keywords (a typo in a constructor) never reach this module: Python refuses them when the
spec file runs, and `pipeline.specload` turns that into the same kind of line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipeline import refs
from pipeline.checker import Checker, Text, close_match, fail, unknown
from pipeline.errors import SpecError
from pipeline.spec import (
    ATTESTATIONS,
    KNOWN_PLATFORMS,
    PREFLIGHT_CHECKS,
    SCAN_FORMATS,
    SEVERITIES,
    BranchTag,
    Builder,
    Image,
    KeylessIdentity,
    PullRequestTag,
    RawTag,
    SemverTag,
    ShaTag,
    Spec,
    TagPolicy,
)
from pipeline.versions import PLACEHOLDER, PLACEHOLDERS

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
IMAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SECRET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
BUILD_ARG = re.compile(r"[^=\s]+")
TAG_AFFIX = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
TAG_SUFFIX = re.compile(r"[A-Za-z0-9_.-]*")
TAG_LITERAL = re.compile(r"[A-Za-z0-9_.-]*")
RELEASE_LITERAL = re.compile(r"[A-Za-z0-9_./-]*")
BRANCH = re.compile(r"[^\s~^:?*\[\\]+")
PYTHON_VERSION = re.compile(r"3\.\d{1,2}")
STAGE = re.compile(
    r"^[ \t]*FROM[ \t]+(?:--\S+[ \t]+)*\S+[ \t]+AS[ \t]+(\S+)[ \t]*$", re.IGNORECASE | re.MULTILINE
)
ARG = re.compile(r"^[ \t]*ARG[ \t]+([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE | re.MULTILINE)
MAX_AFFIX = 64
IMMUTABLE_LOOKING = re.compile(r"v?\d+\.\d+\.\d+([-+].*)?|sha-[0-9a-f]{4,40}")

# Pass 1, the types, with friendly names for the spec's Literal types (keyed by their values).
TYPES = Checker(
    literal_nouns={
        frozenset({"error", "warning", "off"}): "a level",
        frozenset({"push", "tag", "pull_request", "dispatch"}): "a trigger",
        frozenset({"short", "long"}): "a SHA format",
        frozenset({"always", "default_branch", "release"}): "an enable condition",
        frozenset({"auto", "true", "false"}): "a latest setting",
        frozenset({"github", "gitlab"}): "a CI service",
    },
    union_noun="tag rules",
)


def check_types(spec: Spec) -> None:
    """Pass 1 alone: every field has the type its annotation names."""
    if not isinstance(spec, Spec):
        raise fail("spec", spec, "a Spec(...)")
    TYPES.check_fields(spec)


# --- pass 2: values and combinations -----------------------------------------------------------


def validate(spec: Spec, base_dir: Path) -> None:
    """Raise SpecError (one line) for the first problem in the spec; return None when it is fine.

    `base_dir` is the spec file's folder: build contexts and the ignore file are relative to it.
    """
    check_types(spec)
    _check_project(spec)
    for index, image in enumerate(spec.images):
        _check_image(image, f"images[{index}]", base_dir, spec.registry.host)
    _check_unique(spec.images)
    _check_release_tags(spec)
    _check_registry(spec)
    _check_build(spec, base_dir)
    _check_tags(spec.tags)
    _check_scan(spec, base_dir)
    _check_sign(spec)
    _check_publish(spec)
    _check_retry(spec)
    _check_preflight(spec)
    _check_ci(spec)


def _env_name(value: str | None, path: str) -> None:
    if value is not None and not ENV_NAME.fullmatch(value):
        close = re.sub(r"[^A-Za-z0-9_]+", "_", value.strip()).strip("_")
        close = close if ENV_NAME.fullmatch(close) else ""
        raise fail(
            path, value, "an environment variable name ([A-Za-z_][A-Za-z0-9_]*)", close or None
        )


def _non_empty(value: str, path: str, what: str) -> None:
    if not value.strip():
        raise fail(path, value, what)


def _both_or_neither(user: str | None, password: str | None, path: str) -> None:
    if (user is None) != (password is None):
        missing = "password_env" if password is None else "username_env"
        given = "username_env" if password is None else "password_env"
        raise fail(
            f"{path}.{missing}",
            None,
            f"set while {path}.{given} is; name both credential variables or neither",
        )


def _duplicates(items: Sequence[str], path: str, what: str) -> None:
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if item in seen:
            raise fail(f"{path}[{index}]", item, f"unique ({what} {path}[{seen[item]}] too)")
        seen[item] = index


def _check_project(spec: Spec) -> None:
    _non_empty(spec.name, "name", "a project name (non-empty)")
    if spec.url and not re.match(r"https?://\S+$", spec.url):
        close = f"https://{spec.url.strip()}" if "://" not in spec.url else None
        raise fail("url", spec.url, "an http(s) URL", close)
    if not spec.images:
        raise fail("images", spec.images, "a non-empty tuple of Image(...) values")


def _check_image(image: Image, path: str, base: Path, registry_host: str) -> None:
    if not IMAGE_NAME.fullmatch(image.name):
        close = re.sub(r"[^A-Za-z0-9._-]+", "-", image.name.strip()).strip("._-")[:64]
        raise fail(
            f"{path}.name",
            image.name,
            "an image name (letters, digits, '.', '_', '-'; at most 64)",
            close or None,
        )
    refs_repository(image.repository, f"{path}.repository", registry_host)
    if not image.platforms:
        raise fail(
            f"{path}.platforms", image.platforms, "a non-empty tuple of platforms", ("linux/amd64",)
        )
    for index, platform in enumerate(image.platforms):
        if platform not in KNOWN_PLATFORMS:
            raise unknown(f"{path}.platforms[{index}]", platform, "a platform", KNOWN_PLATFORMS)
    _duplicates(image.platforms, f"{path}.platforms", "it is")
    for name in ("target", "test_target"):
        value = getattr(image, name)
        if value is not None and not value.strip():
            raise fail(f"{path}.{name}", value, "a build stage name (or None)")
    if image.test_target is not None and image.test_target == image.target:
        raise fail(
            f"{path}.test_target",
            image.test_target,
            f"a test stage: it is {path}.target itself (name the stage that runs the tests)",
        )
    _check_build_inputs(image, path)
    _check_build_files(image, path, base)
    if image.tags is not None:
        _check_tags(image.tags, f"{path}.tags")
    if image.release_tag is not None:
        _check_release_tag(image.release_tag, f"{path}.release_tag")


def _check_build_inputs(image: Image, path: str) -> None:
    if image.base_image_arg is not None and not ENV_NAME.fullmatch(image.base_image_arg):
        raise fail(f"{path}.base_image_arg", image.base_image_arg, "a build argument name")
    for key in image.build_args:
        if not BUILD_ARG.fullmatch(key):
            raise fail(
                f"{path}.build_args[{key!r}]", key, "a build argument name (no '=' or spaces)"
            )
    for index, secret in enumerate(image.secrets):
        where = f"{path}.secrets[{index}]"
        if not SECRET_ID.fullmatch(secret.id):
            raise fail(f"{where}.id", secret.id, "a secret id (letters, digits, '.', '_', '-')")
        _env_name(secret.env, f"{where}.env")
    _duplicates([s.id for s in image.secrets], f"{path}.secrets", "the same id is in")
    if image.smoke_test and not image.smoke_test[0].strip():
        raise fail(f"{path}.smoke_test[0]", image.smoke_test[0], "a command (non-empty)")


def _check_build_files(image: Image, path: str, base: Path) -> None:
    context_dir = _check_dir(image.context, f"{path}.context", base)
    dockerfile = _check_file(image.dockerfile, f"{path}.dockerfile", context_dir)
    _check_base_image_arg(image, path, dockerfile)
    stages = _stages(dockerfile)
    if stages is None:
        return
    for name in ("target", "test_target"):
        value = getattr(image, name)
        if value is None or value.lower() in stages:
            continue
        known = sorted(stages)
        close = close_match(value, known)
        what = f"a stage of {dockerfile.resolve()}"
        if close is None:
            what += f" ({', '.join(known)})" if known else " (it names no stage with FROM … AS)"
        raise fail(f"{path}.{name}", value, what, close)


def _check_base_image_arg(image: Image, path: str, dockerfile: Path) -> None:
    """`base_image_arg` must be a build argument the Dockerfile declares (`ARG NAME[=default]`):
    a name it does not declare would be passed to nothing, and the build would try the
    Dockerfile's own base instead."""
    if image.base_image_arg is None:
        return
    try:
        text = dockerfile.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    declared = sorted({m.group(1) for m in ARG.finditer(text)})
    if image.base_image_arg in declared:
        return
    close = close_match(image.base_image_arg, declared)
    what = f"a build argument {dockerfile.resolve()} declares"
    if close is None:
        what += f" ({', '.join(declared)})" if declared else " (it declares no ARG)"
    raise fail(f"{path}.base_image_arg", image.base_image_arg, what, close)


def refs_repository(value: str, path: str, host: str) -> None:
    """A repository under `host` (see `refs.is_repository_at`)."""
    if not refs.is_repository_at(value, host):
        raise fail(path, value, refs.REPOSITORY_WHAT, refs.suggest_repository(value))


def refs_host(value: str, path: str) -> None:
    if not refs.is_host(value):
        raise fail(path, value, refs.HOST_WHAT, refs.suggest_host(value))


def _close_entry(folder: Path, name: str, want_dir: bool) -> str | None:
    try:
        entries = [e.name for e in folder.iterdir() if (e.is_dir() if want_dir else e.is_file())]
    except OSError:
        return None
    return close_match(name, sorted(entries))


def _check_dir(relative: str, path: str, base: Path) -> Path:
    _non_empty(relative, path, "a directory (non-empty path)")
    target = base / relative
    if not target.is_dir():
        close = _close_entry(target.parent, target.name, want_dir=True)
        suggestion = str(Path(relative).parent / close) if close else None
        if suggestion is not None and suggestion.startswith("./"):
            suggestion = suggestion[2:]
        raise fail(path, relative, f"a directory (relative to {base})", suggestion)
    return target


def _check_file(relative: str, path: str, folder: Path) -> Path:
    _non_empty(relative, path, "a file (non-empty path)")
    target = folder / relative
    if not target.is_file():
        close = _close_entry(target.parent, target.name, want_dir=False)
        suggestion = str(Path(relative).parent / close) if close else None
        if suggestion is not None and suggestion.startswith("./"):
            suggestion = suggestion[2:]
        raise fail(path, relative, f"a file in {folder.resolve()}", suggestion)
    return target


def _stages(dockerfile: Path) -> set[str] | None:
    """Stage names (`FROM … AS name`, lowercased); None when they cannot be known statically."""
    try:
        text = dockerfile.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    names = {m.group(1).lower() for m in STAGE.finditer(text)}
    if any("$" in name for name in names):
        return None
    return names


def _check_unique(images: Sequence[Image]) -> None:
    names: dict[str, int] = {}
    repositories: dict[str, int] = {}
    for index, image in enumerate(images):
        if image.name in names:
            raise fail(
                f"images[{index}].name",
                image.name,
                f"unique (images[{names[image.name]}] has the same name)",
            )
        if image.repository in repositories:
            raise fail(
                f"images[{index}].repository",
                image.repository,
                f"unique (images[{repositories[image.repository]}] pushes there too)",
            )
        names[image.name] = index
        repositories[image.repository] = index


def _check_release_tags(spec: Spec) -> None:
    """Each image's own release tag is its own: not the spec's, not another image's."""
    seen: dict[str, int] = {}
    for index, image in enumerate(spec.images):
        pattern = image.release_tag
        if pattern is None:
            continue
        path = f"images[{index}].release_tag"
        if pattern == spec.tags.release_tag:
            raise fail(
                path,
                pattern,
                "a release tag of this image's own (it is tags.release_tag, which releases "
                "every image without one; leave it None)",
                Text("None"),
            )
        if pattern.startswith("{{"):
            raise fail(
                path,
                pattern,
                "a release tag with a prefix of its own before {{version}} (like "
                "'api/v{{version}}'), so a tag names one image",
                f"{image.name}/v{{{{version}}}}",
            )
        if pattern in seen:
            raise fail(path, pattern, f"unique (images[{seen[pattern]}] has the same release_tag)")
        seen[pattern] = index


ENDPOINT_SCHEMES = ("tcp://", "ssh://", "unix://", "npipe://")


def _check_build(spec: Spec, base: Path) -> None:
    build = spec.build
    if build.max_parallel < 0:
        raise fail("build.max_parallel", build.max_parallel, "0 (one per core) or more", 0)
    built = sorted({p for image in spec.images for p in image.platforms})
    for platform, builder in build.builders.items():
        path = f"build.builders[{platform!r}]"
        if platform not in built:
            close = close_match(platform, built)
            what = "a platform any image builds"
            if close is None:
                what += f" ({', '.join(built)})"
            raise fail(path, platform, what, close)
        _check_builder(builder, path, base)
    _check_cache(spec)


def _check_builder(builder: Builder, path: str, base: Path) -> None:
    endpoint = builder.endpoint.strip()
    if not endpoint:
        raise fail(f"{path}.endpoint", builder.endpoint, "a builder endpoint (non-empty)")
    if builder.driver == "remote" and not endpoint.startswith(("tcp://", "unix://")):
        raise fail(
            f"{path}.endpoint",
            builder.endpoint,
            "a BuildKit address for the remote driver (tcp://host:port or unix:///path)",
        )
    if "://" in endpoint and not endpoint.startswith(ENDPOINT_SCHEMES):
        raise fail(
            f"{path}.endpoint",
            builder.endpoint,
            "a docker endpoint (tcp://, ssh://, unix://) or a docker context's name",
        )
    if "://" not in endpoint and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", endpoint):
        raise fail(f"{path}.endpoint", builder.endpoint, "a docker context's name")
    files = {"ca_file": builder.ca_file, "cert_file": builder.cert_file}
    files["key_file"] = builder.key_file
    for name, value in files.items():
        if value is not None and not (base / value).is_file():
            raise fail(f"{path}.{name}", value, f"a file (relative to {base})")
    if (builder.cert_file is None) != (builder.key_file is None):
        missing = "key_file" if builder.key_file is None else "cert_file"
        raise fail(f"{path}.{missing}", None, "set with the other half of the client certificate")
    if any(files.values()) and not endpoint.startswith("tcp://"):
        raise fail(
            f"{path}.endpoint",
            builder.endpoint,
            "a tcp:// endpoint (TLS files are for tcp://; ssh and contexts bring their own)",
        )


def _check_cache(spec: Spec) -> None:
    cache = spec.build.cache
    if cache.type == "registry":
        if not cache.ref:
            raise fail(
                "build.cache.ref", cache.ref, "a cache repository (host/path) for type='registry'"
            )
        host, _, repository = cache.ref.partition("/")
        if not refs.is_host(host) or not refs.is_repository(repository, host_known=True):
            raise fail("build.cache.ref", cache.ref, "a cache repository: host[:port]/path, no tag")
        if repository in {image.repository for image in spec.images}:
            raise fail(
                "build.cache.ref",
                cache.ref,
                "a repository of its own (not a release repository: the cache never sits "
                "beside released images)",
            )
    elif cache.ref is not None:
        raise fail(
            "build.cache.ref",
            cache.ref,
            f"unset for type={cache.type!r} (only 'registry' takes a ref)",
        )
    if cache.type == "local" and not (cache.directory or "").strip():
        raise fail("build.cache.directory", cache.directory, "a directory for type='local'")
    if cache.type != "local" and cache.directory is not None:
        raise fail(
            "build.cache.directory",
            cache.directory,
            f"unset for type={cache.type!r} (only 'local' takes a directory)",
        )


def _check_registry(spec: Spec) -> None:
    registry = spec.registry
    refs_host(registry.host, "registry.host")
    _env_name(registry.username_env, "registry.username_env")
    _env_name(registry.password_env, "registry.password_env")
    _both_or_neither(registry.username_env, registry.password_env, "registry")
    if registry.ca_file is not None:
        _non_empty(registry.ca_file, "registry.ca_file", "a CA file path (or None)")


def _check_tags(policy: TagPolicy, where: str = "tags") -> None:
    _check_release_tag(policy.release_tag, f"{where}.release_tag")
    if policy.prefix and not TAG_AFFIX.fullmatch(policy.prefix):
        close = re.sub(r"[^A-Za-z0-9_.-]+", "-", policy.prefix).lstrip(".-")
        raise fail(
            f"{where}.prefix",
            policy.prefix,
            "a tag prefix ([A-Za-z0-9_.-], not starting with '.' or '-')",
            close or None,
        )
    if not TAG_SUFFIX.fullmatch(policy.suffix):
        close = re.sub(r"[^A-Za-z0-9_.-]+", "-", policy.suffix)
        raise fail(f"{where}.suffix", policy.suffix, "a tag suffix ([A-Za-z0-9_.-])", close or None)
    if len(policy.prefix) + len(policy.suffix) > MAX_AFFIX:
        raise fail(
            f"{where}.suffix",
            policy.suffix,
            f"short enough (prefix and suffix together at most {MAX_AFFIX} characters)",
        )
    if policy.rules is None:
        return
    if not policy.rules:
        raise fail(
            f"{where}.rules",
            policy.rules,
            "a non-empty tuple of tag rules",
            Text("None (the default)"),
        )
    for index, rule in enumerate(policy.rules):
        _check_rule(rule, f"{where}.rules[{index}]")


def _check_rule(rule: object, path: str) -> None:
    if isinstance(rule, SemverTag):
        _check_pattern(rule.pattern, f"{path}.pattern")
    elif isinstance(rule, ShaTag):
        _check_sha(rule, path)
    elif isinstance(rule, RawTag):
        if not rule.value:
            raise fail(f"{path}.value", rule.value, "a tag (a RawTag needs a non-empty value)")
        if not refs.is_tag(rule.value):
            raise fail(f"{path}.value", rule.value, refs.TAG_WHAT, refs.suggest_tag(rule.value))
    elif isinstance(rule, PullRequestTag):
        if rule.prefix and not TAG_AFFIX.fullmatch(rule.prefix):
            raise fail(f"{path}.prefix", rule.prefix, "a tag prefix ([A-Za-z0-9_.-])")
    elif not isinstance(rule, BranchTag):  # pragma: no cover - pass 1 rejects other types
        raise fail(path, rule, "a tag rule")


def _placeholders(pattern: str, path: str) -> set[str]:
    used = set()
    for match in PLACEHOLDER.finditer(pattern):
        name = match.group(1)
        if name not in PLACEHOLDERS:
            close = close_match(name, PLACEHOLDERS)
            listed = ", ".join(f"{{{{{p}}}}}" for p in PLACEHOLDERS)
            raise fail(
                path,
                match.group(0),
                "a placeholder" if close else f"a placeholder ({listed})",
                f"{{{{{close}}}}}" if close else None,
            )
        used.add(name)
    return used


def _braces_fixed(pattern: str) -> str:
    return re.sub(r"(?<!\{)\{\s*([A-Za-z_]+)\s*\}(?!\})", r"{{\1}}", pattern)


def _check_pattern(pattern: str, path: str) -> None:
    used = _placeholders(pattern, path)
    literal = PLACEHOLDER.sub("", pattern)
    if not TAG_LITERAL.fullmatch(literal):
        fixed = _braces_fixed(pattern)
        raise fail(
            path,
            pattern,
            "a tag pattern (placeholders like {{version}} and [A-Za-z0-9_.-])",
            fixed if fixed != pattern else None,
        )
    if not used:
        raise fail(
            path,
            pattern,
            "a tag pattern: it has no placeholder (a fixed tag is a RawTag)",
            Text(f"RawTag(value={pattern!r})"),
        )


def _check_release_tag(pattern: str, path: str = "tags.release_tag") -> None:
    used = _placeholders(pattern, path)
    count = len(PLACEHOLDER.findall(pattern))
    if (
        used == {"version"}
        and count == 1
        and RELEASE_LITERAL.fullmatch(PLACEHOLDER.sub("", pattern))
    ):
        return
    fixed = _braces_fixed(pattern)
    found = list(PLACEHOLDER.finditer(fixed))
    if found:
        fixed = fixed[: found[0].start()] + "{{version}}" + fixed[found[-1].end() :]
    else:
        fixed += "{{version}}"
    ok = fixed != pattern and RELEASE_LITERAL.fullmatch(PLACEHOLDER.sub("", fixed)) is not None
    raise fail(
        path, pattern, "a release tag pattern with {{version}} exactly once", fixed if ok else None
    )


def _check_sha(rule: ShaTag, path: str) -> None:
    if rule.prefix and not TAG_AFFIX.fullmatch(rule.prefix):
        raise fail(f"{path}.prefix", rule.prefix, "a tag prefix ([A-Za-z0-9_.-])")
    if not 4 <= rule.length <= 40:
        close = min(max(rule.length, 4), 40)
        raise fail(f"{path}.length", rule.length, "a SHA length (4..40)", close)
    if rule.format == "long" and rule.length not in (7, 40):
        raise fail(
            f"{path}.length",
            rule.length,
            "used with format='long' (always 40 characters)",
            Text("format='short'"),
        )


def _check_scan(spec: Spec, base: Path) -> None:
    scan = spec.scan
    for index, severity in enumerate(scan.fail_on):
        if severity not in SEVERITIES:
            raise unknown(f"scan.fail_on[{index}]", severity, "a severity", SEVERITIES)
    _duplicates(scan.fail_on, "scan.fail_on", "it is")
    for index, fmt in enumerate(scan.formats):
        if fmt not in SCAN_FORMATS:
            raise unknown(f"scan.formats[{index}]", fmt, "a scan format", SCAN_FORMATS)
    _duplicates(scan.formats, "scan.formats", "it is")
    if scan.ignore_file is not None:
        _check_file(scan.ignore_file, "scan.ignore_file", base)
    if scan.timeout_seconds < 1:
        raise fail("scan.timeout_seconds", scan.timeout_seconds, "a timeout (at least 1 second)")
    if scan.db_repository is not None:
        try:
            ref = refs.ImageRef.parse(scan.db_repository, argument="scan.db_repository")
        except SpecError:
            raise fail(
                "scan.db_repository",
                scan.db_repository,
                "a Trivy DB repository (host[:port]/repository[:tag])",
            ) from None
        if ref.host is None or ref.digest is not None:
            raise fail(
                "scan.db_repository",
                scan.db_repository,
                "a Trivy DB repository with its host (host[:port]/repository[:tag])",
            )


def _check_sign(spec: Spec) -> None:
    sign = spec.sign
    _env_name(sign.key_env, "sign.key_env")
    _env_name(sign.public_key_env, "sign.public_key_env")
    for index, kind in enumerate(sign.attestations):
        if kind not in ATTESTATIONS:
            raise unknown(f"sign.attestations[{index}]", kind, "an attestation", ATTESTATIONS)
    _duplicates(sign.attestations, "sign.attestations", "it is")
    if sign.fulcio_url is not None and not _url(sign.fulcio_url):
        raise fail("sign.fulcio_url", sign.fulcio_url, "a Fulcio URL (https://…)")
    who = sign.keyless
    if who is None:
        return
    if not _url(who.issuer):
        close = f"https://{who.issuer.strip()}" if "://" not in who.issuer else None
        raise fail("sign.keyless.issuer", who.issuer, "an OIDC issuer URL (https://…)", close)
    _check_regexp(who.ref_regexp, "sign.keyless.ref_regexp")
    if who.ci is not None:
        _check_ci_identity(who)
        return
    if who.subject is None and who.subject_regexp is None:
        raise fail(
            "sign.keyless",
            who,
            "a complete identity: set subject or subject_regexp (exactly one), or ci with "
            "repository and workflow",
        )
    if who.subject is not None and who.subject_regexp is not None:
        raise fail(
            "sign.keyless.subject_regexp",
            who.subject_regexp,
            "allowed together with sign.keyless.subject; set exactly one",
        )
    if who.subject is not None:
        _non_empty(who.subject, "sign.keyless.subject", "a certificate subject (non-empty)")
    if who.subject_regexp is not None:
        _check_regexp(who.subject_regexp, "sign.keyless.subject_regexp")


def _url(text: str) -> bool:
    """https://…, or http:// on loopback (a test bench's issuer or Fulcio)."""
    if re.match(r"https://\S+$", text):
        return True
    match = re.match(r"http://([^/:]+)(:\d+)?(/\S*)?$", text)
    return bool(match) and refs.is_loopback(match.group(1) if match else "")


def _check_regexp(value: str, path: str) -> None:
    try:
        re.compile(value)
    except re.error as exc:
        raise fail(path, value, f"a regular expression ({exc})") from None


def _check_ci_identity(who: KeylessIdentity) -> None:
    for name in ("repository", "workflow"):
        value = getattr(who, name)
        if not value or not value.strip():
            raise fail(
                f"sign.keyless.{name}",
                value,
                f"set with sign.keyless.ci={who.ci!r} (the {name} that signs releases)",
            )
    if who.subject is not None or who.subject_regexp is not None:
        raise fail(
            "sign.keyless.subject" if who.subject is not None else "sign.keyless.subject_regexp",
            who.subject or who.subject_regexp,
            f"set with sign.keyless.ci (the identity is the {who.ci} workflow's URL)",
        )
    if who.server is not None and not _url(who.server):
        raise fail("sign.keyless.server", who.server, "a server URL (https://…)")


def _check_publish(spec: Spec) -> None:
    seen: dict[tuple[str, str | None], int] = {}
    for index, mirror in enumerate(spec.publish.mirrors):
        path = f"publish.mirrors[{index}]"
        refs_host(mirror.host, f"{path}.host")
        if mirror.repository is not None:
            refs_repository(mirror.repository, f"{path}.repository", mirror.host)
        _env_name(mirror.username_env, f"{path}.username_env")
        _env_name(mirror.password_env, f"{path}.password_env")
        _both_or_neither(mirror.username_env, mirror.password_env, path)
        key = (mirror.host, mirror.repository)
        if key in seen:
            raise fail(
                f"{path}.host", mirror.host, f"unique (publish.mirrors[{seen[key]}] is the same)"
            )
        if mirror.host == spec.registry.host and mirror.repository is None:
            raise fail(f"{path}.host", mirror.host, "a second registry (it is registry.host)")
        seen[key] = index


def _check_retry(spec: Spec) -> None:
    retry = spec.retry
    if retry.attempts < 1:
        raise fail("retry.attempts", retry.attempts, "a number of attempts (at least 1)", 1)
    if retry.initial_backoff_seconds < 0:
        raise fail(
            "retry.initial_backoff_seconds",
            retry.initial_backoff_seconds,
            "a backoff (seconds >= 0)",
        )
    if retry.max_backoff_seconds < retry.initial_backoff_seconds:
        raise fail(
            "retry.max_backoff_seconds",
            retry.max_backoff_seconds,
            f"at least retry.initial_backoff_seconds ({retry.initial_backoff_seconds})",
        )


def _check_preflight(spec: Spec) -> None:
    for name in spec.preflight.levels:
        if name not in PREFLIGHT_CHECKS:
            raise unknown(
                f"preflight.levels[{name!r}]", name, "a preflight check", PREFLIGHT_CHECKS
            )


def _check_runners(
    mapping: Mapping[str, str] | Mapping[str, tuple[str, ...]], field: str, built: list[str]
) -> None:
    for platform, runner in mapping.items():
        path = f"{field}[{platform!r}]"
        if platform not in built:
            close = close_match(platform, built)
            what = "a platform any image builds"
            if close is None:
                what += f" ({', '.join(built)})"
            raise fail(path, platform, what, close)
        if isinstance(runner, str):
            _non_empty(runner, path, "a runner label (non-empty)")
            continue
        if not runner:
            raise fail(path, runner, "a non-empty tuple of runner tags")
        for index, tag in enumerate(runner):
            _non_empty(tag, f"{path}[{index}]", "a runner tag (non-empty)")


def _check_ci(spec: Spec) -> None:
    ci = spec.ci
    if not ci.triggers:
        raise fail("ci.triggers", ci.triggers, "a non-empty tuple of triggers", ("push", "tag"))
    _duplicates(ci.triggers, "ci.triggers", "it is")
    if not BRANCH.fullmatch(ci.default_branch) or ci.default_branch.startswith(("-", "/")):
        close = re.sub(r"[\s~^:?*\[\\]+", "-", ci.default_branch.strip()).strip("-/")
        raise fail("ci.default_branch", ci.default_branch, "a branch name", close or None)
    if not PYTHON_VERSION.fullmatch(ci.python_version):
        raise fail("ci.python_version", ci.python_version, "a Python version like '3.11'")
    built = sorted({p for image in spec.images for p in image.platforms})
    _check_runners(ci.github_runners, "ci.github_runners", built)
    _check_runners(ci.gitlab_runner_tags, "ci.gitlab_runner_tags", built)
    _non_empty(ci.github_default_runner, "ci.github_default_runner", "a runner label (non-empty)")
    _non_empty(
        ci.production_environment, "ci.production_environment", "an environment name (non-empty)"
    )
    if not refs.is_tag(ci.production_tag):
        raise fail(
            "ci.production_tag",
            ci.production_tag,
            refs.TAG_WHAT,
            refs.suggest_tag(ci.production_tag),
        )
    if IMMUTABLE_LOOKING.fullmatch(ci.production_tag) or ci.production_tag == "latest":
        raise fail(
            "ci.production_tag",
            ci.production_tag,
            "a floating tag of its own (versions, sha tags and latest are managed by the policy)",
            "production",
        )
    for name in (
        "registry_username_secret",
        "registry_password_secret",
        "cosign_key_secret",
        "cosign_password_secret",
        "cosign_public_key_variable",
    ):
        _env_name(getattr(ci, name), f"ci.{name}")
    for name in ("job_image", "gitlab_dind_image"):
        value = getattr(ci, name)
        if value is not None and not _by_digest(value):
            raise fail(f"ci.{name}", value, "an image by digest (repository@sha256:<64 hex>)")
    if ci.github_job_container and ci.job_image is None:
        raise fail("ci.job_image", None, "the job image by digest (github_job_container is set)")
    _non_empty(ci.signing_environment, "ci.signing_environment", "an environment name (non-empty)")
    release = COSIGN_RELEASE.fullmatch(ci.cosign_release)
    if release is None or (int(release[1]), int(release[2])) < (2, 6):
        raise fail("ci.cosign_release", ci.cosign_release, "a cosign release v2.6.0 or later")


COSIGN_RELEASE = re.compile(r"v(\d+)\.(\d+)\.\d+")


def _by_digest(value: str) -> bool:
    try:
        refs.DigestRef.parse(value)
    except SpecError:
        return False
    return True


# --- command-line values checked against the same rules ----------------------------------------


def check_platform_arguments(platforms: Sequence[str], argument: str, *, at_most: int) -> None:
    """`--platform` values, checked before any tool or registry is touched: each must be a known
    platform, and a per-platform build job takes one. (Whether the spec builds it is checked when
    the spec is loaded, by the build stage.)"""
    for value in platforms:
        if value not in KNOWN_PLATFORMS:
            raise unknown(argument, value, "a platform", KNOWN_PLATFORMS)
    if len(platforms) > at_most:
        raise SpecError(
            f"{argument}: given {len(platforms)} times ({', '.join(platforms)}); "
            f"a per-platform build job takes exactly one platform"
        )
