"""Which tag names may never move (promotion and rollback refuse them)."""

from __future__ import annotations

import pytest

from pipeline.spec import SemverTag, ShaTag, TagPolicy
from pipeline.tags import is_immutable_name, version_tag_names

DEFAULT = TagPolicy()
CUSTOM = TagPolicy(prefix="app-", suffix="-slim", rules=(ShaTag(prefix="git-", length=10),))


@pytest.mark.parametrize(
    ("policy", "name", "immutable"),
    [
        (DEFAULT, "1.2.3", True),
        (DEFAULT, "v1.2.3", True),
        (DEFAULT, "1.2.3-rc.1", True),
        (DEFAULT, "1.2.3_build.5", True),
        (DEFAULT, "sha-abc1234", True),
        (DEFAULT, "sha-" + "a" * 40, True),
        (DEFAULT, "latest", False),
        (DEFAULT, "1.2", False),
        (DEFAULT, "1", False),
        (DEFAULT, "production", False),
        (DEFAULT, "pr-42", False),
        (DEFAULT, "main", False),
        (DEFAULT, "sha-xyz", False),
        (DEFAULT, "sha-abc", False),
        (CUSTOM, "app-1.2.3-slim", True),
        (CUSTOM, "app-git-abcdef1234-slim", True),
        (CUSTOM, "app-sha-abcdef1-slim", False),
        (CUSTOM, "app-latest-slim", False),
    ],
)
def test_immutable_classes(policy: TagPolicy, name: str, immutable: bool) -> None:
    assert is_immutable_name(policy, name) is immutable


@pytest.mark.parametrize(
    ("policy", "names"),
    [
        (TagPolicy(), ("1.2.3",)),
        (TagPolicy(prefix="web-"), ("web-1.2.3",)),
        (
            TagPolicy(rules=(SemverTag(pattern="v{{version}}"), SemverTag(pattern="{{major}}"))),
            ("v1.2.3",),
        ),
        (TagPolicy(rules=(SemverTag(pattern="{{major}}.{{minor}}.{{patch}}"),)), ("1.2.3",)),
    ],
)
def test_version_tag_names(policy: TagPolicy, names: tuple[str, ...]) -> None:
    assert version_tag_names(policy, "1.2.3") == names
    assert version_tag_names(policy, "not-a-version") == ()
