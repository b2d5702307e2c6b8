"""The .dockerignore reader against Docker's rules (moby patternmatcher), table-driven."""

from __future__ import annotations

import pytest

from pipeline.dockerignore import excluded, parse

RULES = """
# comment
*.pyc
dist
**/__pycache__
!dist/keep.txt
/app/secret
.env*
a/**/b
[a-c].txt
docs/?.md
"""


@pytest.mark.parametrize(
    ("path", "out"),
    [
        ("x.pyc", True),
        ("dir/x.pyc", False),  # `*` is one segment: only the root's
        ("dist", True),
        ("dist/x/y.bin", True),  # a matched directory takes its contents along
        ("dist/keep.txt", False),  # re-included by `!`
        ("__pycache__/m.cpython-311.pyc", True),
        ("pkg/sub/__pycache__/m.pyc", True),
        ("app/secret", True),  # the leading slash is dropped
        ("app/secret/key", True),
        ("app/public", False),
        (".env.production", True),
        ("config/.env", False),
        ("a/b", True),  # `**` can be no segment
        ("a/x/y/b", True),
        ("a/x/c", False),
        ("b.txt", True),
        ("d.txt", False),
        ("docs/a.md", True),
        ("docs/ab.md", False),
        ("src/main.py", False),
        ("comment", False),
    ],
)
def test_docker_rules(path: str, out: bool) -> None:
    assert excluded(path, parse(RULES)) is out


def test_last_match_wins() -> None:
    patterns = parse("*.log\n!keep.log\nkeep.log\n")
    assert excluded("keep.log", patterns)
    assert excluded("other.log", patterns)
