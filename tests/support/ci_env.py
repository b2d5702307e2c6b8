"""The variables a CI service sets for a job, built in one place for every test that pretends
to be GitHub Actions (the context tests, the bad-input table, the workflow runner)."""

from __future__ import annotations

from pathlib import Path

GITHUB_SERVER = "https://github.example"
GITHUB_REPOSITORY = "acme/sample-app"


def github_env(
    event_name: str,
    ref: str,
    sha: str,
    event_path: Path,
    *,
    repository: str = GITHUB_REPOSITORY,
    **extra: str,
) -> dict[str, str]:
    """What the Actions runner sets for `event_name` on `ref` (refs/heads/…, refs/tags/…,
    refs/pull/N/merge): GITHUB_REF_NAME and GITHUB_REF_TYPE follow from the ref."""
    return {
        "GITHUB_ACTIONS": "true",
        "CI": "true",
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_REF": ref,
        "GITHUB_REF_NAME": ref.split("/", 2)[-1],
        "GITHUB_REF_TYPE": "tag" if ref.startswith("refs/tags/") else "branch",
        "GITHUB_SHA": sha,
        "GITHUB_SERVER_URL": GITHUB_SERVER,
        "GITHUB_REPOSITORY": repository,
        **extra,
    }
