"""The tag policy: which tags a release context publishes. Pure.

Tag classes: **immutable** tags (a full version, `sha-<hex>`) are never re-pointed once published;
**floating** tags (`X.Y`, `X`, `latest`, branch names, `pr-N`, raw values) move by design.

The default policy (`TagPolicy(rules=None)`):

- release tag `vX.Y.Z` or `X.Y.Z` (`TagPolicy.release_tag`): `X.Y.Z`, `X.Y`, `X`, `latest` and
  `sha-<7 hex>`. Each floating tag only when this version is the highest STABLE version within its
  range among the known releases (`ReleaseContext.releases`): releasing 1.4.7 after 2.0.0 gives
  `1.4.7`, `1.4`, `1` (if no higher 1.x) and `sha-…`, never `latest`. `X` is never produced for 0.
- pre-release `X.Y.Z-rc.1`: only itself and `sha-<7>`;
- a tag that is not a semver release: a warning, `sha-<7>` only;
- branch push: the sanitised branch name and `sha-<7>`;
- pull/merge request: `pr-N` and `sha-<7>`, and `publish=False` (build and scan only).

Custom rules (`TagPolicy.rules`) follow docker/metadata-action: `SemverTag` patterns with
`{{version}}` `{{major}}` `{{minor}}` `{{patch}}` `{{raw}}` (a pattern without the patch level
floats over its range and follows the rule above; pre-releases only extend patterns with
`{{version}}` or `{{raw}}`), `ShaTag`, `RawTag` (`enable`: always, default_branch, or release = a
stable release), `BranchTag`, `PullRequestTag`. `prefix`/`suffix` apply to every tag, `latest` too.
`latest`: auto = the highest stable release rule; true = every stable release; false = never.
Output order is the rule order, `latest` just before the first sha tag; duplicates are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import semver

from pipeline.errors import SpecError
from pipeline.spec import (
    BranchTag,
    Image,
    PullRequestTag,
    RawTag,
    SemverTag,
    ShaTag,
    Spec,
    TagPolicy,
    TagRule,
)
from pipeline.versions import (
    PLACEHOLDER,
    exact_release_version,
    exact_release_versions,
    fill,
    parse_version,
    release_version,
)

if TYPE_CHECKING:
    from pipeline.context import ReleaseContext

MAX_TAG_LENGTH = 128
_TAG_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")

DEFAULT_RULES: tuple[TagRule, ...] = (
    SemverTag(pattern="{{version}}"),
    SemverTag(pattern="{{major}}.{{minor}}"),
    SemverTag(pattern="{{major}}"),
    BranchTag(),
    PullRequestTag(),
    ShaTag(),
)


@dataclass(frozen=True)
class Tag:
    name: str
    immutable: bool


@dataclass(frozen=True)
class TagSet:
    """What a context publishes. `publish` is False for pull requests (build and scan only)."""

    version: str | None
    tags: tuple[Tag, ...]
    warnings: tuple[str, ...] = ()
    publish: bool = True
    sha_tag: str | None = None  # the first sha tag: "was this commit built already?"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tags)


# --- names ------------------------------------------------------------------------------------


def sanitize(name: str, max_length: int = MAX_TAG_LENGTH) -> str:
    """Runs of characters outside [A-Za-z0-9._-] become '-'; no leading '.' or '-'; length cut."""
    return _TAG_CHARS.sub("-", name).lstrip(".-")[:max_length]


def _version_text(version: semver.Version) -> str:
    return str(version).replace("+", "_")  # '+' is not allowed in a tag


def is_immutable_name(policy: TagPolicy, name: str) -> bool:
    """Whether a tag name belongs to an immutable class under `policy`: a full version or a sha
    tag. Promotions and rollbacks use it to refuse moving such a tag, whoever asks."""
    core = name
    if policy.prefix and core.startswith(policy.prefix):
        core = core[len(policy.prefix) :]
    if policy.suffix and core.endswith(policy.suffix):
        core = core[: len(core) - len(policy.suffix)]
    if parse_version(core.removeprefix("v").replace("_", "+")) is not None:
        return True
    rules = policy.rules if policy.rules is not None else DEFAULT_RULES
    return any(
        isinstance(rule, ShaTag)
        and core.startswith(rule.prefix)
        and re.fullmatch(r"[0-9a-f]{4,40}", core[len(rule.prefix) :]) is not None
        for rule in rules
    )


def version_tag_names(policy: TagPolicy, version: str) -> tuple[str, ...]:
    """The immutable tags a release of `version` is published under (`1.2.3`, `v1.2.3`…):
    every full-version rule of the policy, with its prefix and suffix."""
    parsed = parse_version(version)
    if parsed is None:
        return ()
    values = {
        "version": _version_text(parsed),
        "major": str(parsed.major),
        "minor": str(parsed.minor),
        "patch": str(parsed.patch),
    }
    rules = policy.rules if policy.rules is not None else DEFAULT_RULES
    names: list[str] = []
    for rule in rules:
        if not isinstance(rule, SemverTag):
            continue
        used = {m.group(1) for m in PLACEHOLDER.finditer(rule.pattern)}
        if "raw" in used or not used & {"version", "patch"}:
            continue
        name = f"{policy.prefix}{fill(rule.pattern, values)}{policy.suffix}"
        if name not in names:
            names.append(name)
    return tuple(names)


# --- compute -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Release:
    version: semver.Version
    raw: str  # the git tag
    known: tuple[semver.Version, ...]  # stable known releases

    @property
    def stable(self) -> bool:
        return self.version.prerelease is None

    def highest_in(self, *, major: bool = False, minor: bool = False) -> bool:
        v = self.version
        for other in self.known:
            if major and other.major != v.major:
                continue
            if minor and (other.major, other.minor) != (v.major, v.minor):
                continue
            if other.compare(v) > 0:
                return False
        return True


def compute(
    policy: TagPolicy, ctx: ReleaseContext, *, known: Sequence[str] | None = None
) -> TagSet:
    """The tags `ctx` publishes under `policy`; `known` are the release versions the floating
    tags are ranked among (default: the context's releases under the spec's release tag)."""
    warnings: list[str] = []
    release: _Release | None = None
    sha_short = ctx.sha[:7]
    if ctx.tag is not None and ctx.event in ("tag", "dispatch"):
        version = release_version(ctx.tag, policy.release_tag)
        if version is None:
            warnings.append(
                f"tag {ctx.tag!r} is not a release tag ({policy.release_tag!r} with a semver "
                f"X.Y.Z version): no version tags, only the commit tag"
            )
        else:
            versions = [
                v for v in map(parse_version, ctx.releases if known is None else known) if v
            ]
            versions.append(version)
            stable = tuple(v for v in versions if v.prerelease is None)
            release = _Release(version=version, raw=ctx.tag, known=stable)
    elif ctx.event == "local":
        warnings.append(f"HEAD ({sha_short}) is detached and has no release tag: commit tag only")

    rules: Sequence[TagRule] = policy.rules if policy.rules is not None else DEFAULT_RULES
    out: list[Tag] = []
    sha_names: list[str] = []
    for rule in rules:
        for name, immutable in _apply(rule, ctx, release):
            if isinstance(rule, ShaTag):
                sha_names.append(name)
            out.append(Tag(name, immutable))

    if release is not None and release.stable and _wants_latest(policy, release):
        first_sha = next((i for i, t in enumerate(out) if t.name in sha_names), len(out))
        out.insert(first_sha, Tag("latest", False))

    tags, sha_tag = _finish(out, policy, sha_names, warnings)
    publish = ctx.event != "pull_request"
    if ctx.shallow and release is not None and release.stable:
        warnings.append(
            "the checkout is shallow: known releases may be missing, so floating tags may move "
            "wrongly (fetch all tags: actions/checkout fetch-depth: 0, GitLab GIT_DEPTH: 0)"
        )
    return TagSet(
        version=str(release.version) if release else None,
        tags=tags,
        warnings=tuple(warnings),
        publish=publish,
        sha_tag=sha_tag,
    )


def _wants_latest(policy: TagPolicy, release: _Release) -> bool:
    if policy.latest == "false":
        return False
    if policy.latest == "true":
        return True
    return release.highest_in()


def _apply(rule: TagRule, ctx: ReleaseContext, release: _Release | None) -> list[tuple[str, bool]]:
    """(name, immutable) pairs one rule gives in this context, before prefix and suffix."""
    if isinstance(rule, SemverTag):
        return _semver(rule.pattern, release)
    found: list[tuple[str, bool]] = []
    if isinstance(rule, ShaTag):
        length = 40 if rule.format == "long" else rule.length
        found.append((f"{rule.prefix}{ctx.sha[:length]}", True))
    elif isinstance(rule, RawTag):
        stable_release = release is not None and release.stable
        if (
            rule.enable == "always"
            or (rule.enable == "default_branch" and ctx.is_default_branch)
            or (rule.enable == "release" and stable_release)
        ):
            found.append((rule.value, False))
    elif isinstance(rule, BranchTag):
        if ctx.branch is not None and ctx.event in ("branch", "dispatch") and ctx.tag is None:
            found.append((sanitize(ctx.branch), False))
    elif ctx.event == "pull_request" and ctx.pr_number is not None:  # PullRequestTag
        found.append((f"{rule.prefix}{ctx.pr_number}", False))
    return found


def _semver(pattern: str, release: _Release | None) -> list[tuple[str, bool]]:
    if release is None:
        return []
    used = {m.group(1) for m in PLACEHOLDER.finditer(pattern)}
    full = bool(used & {"version", "raw", "patch"})
    if not release.stable and not used & {"version", "raw"}:
        return []  # pre-releases only extend the full version
    v = release.version
    if not full:
        if "minor" in used and not release.highest_in(minor=True):
            return []
        if "minor" not in used and (v.major == 0 or not release.highest_in(major=True)):
            return []
    values = {
        "version": _version_text(v),
        "major": str(v.major),
        "minor": str(v.minor),
        "patch": str(v.patch),
        "raw": sanitize(release.raw),
    }
    name = fill(pattern, values)
    return [(name, full)]


def _finish(
    out: list[Tag], policy: TagPolicy, sha_names: list[str], warnings: list[str]
) -> tuple[tuple[Tag, ...], str | None]:
    """Prefix and suffix, length and grammar checks, duplicates dropped (immutability kept)."""
    room = MAX_TAG_LENGTH - len(policy.prefix) - len(policy.suffix)
    result: dict[str, bool] = {}
    sha_tag: str | None = None
    for tag in out:
        core = tag.name
        if len(core) > room:
            if tag.immutable:
                warnings.append(f"tag {core!r} is longer than {room} characters: skipped")
                continue
            core = core[:room]
        name = f"{policy.prefix}{core}{policy.suffix}"
        if not core or not _TAG.fullmatch(name):
            warnings.append(f"{name!r} is not a valid tag: skipped")
            continue
        if sha_tag is None and tag.name in sha_names:
            sha_tag = name
        result[name] = result.get(name, False) or tag.immutable
    return tuple(Tag(n, i) for n, i in result.items()), sha_tag


# --- the images a release tag releases ---------------------------------------------------------


def image_policy(spec: Spec, image: Image) -> TagPolicy:
    """The tag policy of one image: its own `tags` or the spec's, with its own `release_tag`."""
    policy = image.tags or spec.tags
    if image.release_tag is not None:
        policy = replace(policy, release_tag=image.release_tag)
    return policy


@dataclass(frozen=True)
class ReleaseSet:
    """What one run releases: the images its context selects, each with its own tags.

    A tag matching an image's own `release_tag` (`api/v1.2.3`) releases that image alone; a
    release tag of the spec (`v1.2.3`) releases every image without a release tag of its own;
    branches, pull requests and tags that are no release take every image."""

    tagsets: Mapping[str, TagSet]  # image name -> its tags, the selected images in spec order
    tagset: TagSet  # the run's: its version, whether it publishes, every warning once
    left_out: tuple[str, ...] = ()  # images of the spec this run does not release

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.tagsets)


def selected_images(spec: Spec, ctx: ReleaseContext) -> tuple[Image, ...]:
    images = spec.images
    if ctx.tag is None or ctx.event not in ("tag", "dispatch"):
        return images
    own = tuple(
        i for i in images if i.release_tag and exact_release_version(ctx.tag, i.release_tag)
    )
    if own:
        return own
    if release_version(ctx.tag, spec.tags.release_tag) is None:
        return images  # not a release: every image gets its commit tag, as before
    shared = tuple(i for i in images if i.release_tag is None)
    if not shared:
        patterns = ", ".join(f"{i.name}: {i.release_tag}" for i in images)
        raise SpecError(
            f"tag {ctx.tag}: releases no image; every image has a release tag of its own "
            f"({patterns})"
        )
    return shared


def release_set(spec: Spec, ctx: ReleaseContext) -> ReleaseSet:
    chosen = selected_images(spec, ctx)
    tagsets: dict[str, TagSet] = {}
    for image in chosen:
        policy = image_policy(spec, image)
        known = (
            exact_release_versions(ctx.git_tags, image.release_tag) if image.release_tag else None
        )
        tagsets[image.name] = compute(policy, ctx, known=known)
    first = next(iter(tagsets.values()))
    warnings = tuple(dict.fromkeys(w for ts in tagsets.values() for w in ts.warnings))
    run = TagSet(
        version=first.version,
        tags=first.tags,
        warnings=warnings,
        publish=first.publish,
        sha_tag=first.sha_tag,
    )
    left_out = tuple(i.name for i in spec.images if i.name not in tagsets)
    return ReleaseSet(tagsets=tagsets, tagset=run, left_out=left_out)
