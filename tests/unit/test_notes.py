"""Release notes for GitHub Releases and GitLab releases: digests per image and platform, the
exact verify commands, the scan verdict; and the step outputs the provenance job reads."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pipeline.commands.notes import verify_commands
from pipeline.emit import notes
from pipeline.errors import SpecError
from pipeline.spec import CIOptions
from pipeline.specload import load_spec
from pipeline.validate import validate
from tests.support.spec_variants import KEYLESS, two_images

ROOT = Path(__file__).resolve().parents[2]
SPEC = load_spec(ROOT / "sample-app" / "release.py").spec
INDEX = "sha256:" + "1" * 64
AMD, ARM = "sha256:" + "2" * 64, "sha256:" + "3" * 64


def _report() -> dict[str, Any]:
    return {
        "version": "4.0.0",
        "commit": "0123456789abcdef0123",
        "public_key": "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n",
        "images": [
            {
                "name": "sample-app",
                "repository": "127.0.0.1:5000/acme/sample-app",
                "index_digest": INDEX,
                "platforms": {"linux/arm64": ARM, "linux/amd64": AMD},
                "scan": {"verdict": "pass", "counts": {"HIGH": 2}, "unfixed_allowed": 2},
                "tags": [{"name": "4.0.0"}, {"name": "latest"}],
            },
            {"name": "Worker_2", "repository": "r/w", "index_digest": INDEX, "tags": []},
        ],
    }


def _render(spec: Any) -> str:
    report = _report()
    return notes.render(report, verify_commands(spec, report), public_key=spec.sign.keyless is None)


def test_key_mode_notes() -> None:
    text = _render(SPEC)
    reference = f"127.0.0.1:5000/acme/sample-app@{INDEX}"
    assert f"cosign verify --key cosign.pub --insecure-ignore-tlog=true {reference}" in text
    assert (
        f"cosign verify-attestation --key cosign.pub --insecure-ignore-tlog=true "
        f"--type cyclonedx {reference}"
    ) in text
    assert f"--type slsaprovenance1 {reference}" in text  # cosign's name for the provenance
    assert f"| linux/amd64 | `{AMD}` |\n| linux/arm64 | `{ARM}` |" in text
    assert "Scan: pass: CRITICAL 0, HIGH 2, MEDIUM 0, LOW 0 (2 unfixed" in text
    assert "Tags: `4.0.0`, `latest`" in text
    assert "-----BEGIN PUBLIC KEY-----" in text
    assert "not scanned in this run" in text  # the second image has no scan: reused


def test_keyless_notes_name_the_identity() -> None:
    text = _render(replace(SPEC, sign=KEYLESS))
    assert (
        "cosign verify --certificate-oidc-issuer https://token.actions.githubusercontent.com "
        "--certificate-identity-regexp '^https://github.com/acme/' 127.0.0.1:5000"
    ) in text
    assert "--insecure-ignore-tlog" not in text  # keyless uses the transparency log
    assert "BEGIN PUBLIC KEY" not in text


def test_outputs() -> None:
    assert notes.outputs(_report()) == {
        "version": "4.0.0",
        "sample-app-repository": "127.0.0.1:5000/acme/sample-app",
        "sample-app-digest": INDEX,
        "worker-2-repository": "r/w",
        "worker-2-digest": INDEX,
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"job_image": "runner:latest"}, "ci.job_image"),
        ({"gitlab_dind_image": "docker:27-dind"}, "ci.gitlab_dind_image"),
        ({"github_job_container": True}, "ci.job_image"),
        ({"cosign_release": "v2.5.0"}, "v2.6.0 or later"),
        ({"signing_environment": ""}, "ci.signing_environment"),
    ],
)
def test_ci_options_are_validated(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message.replace(".", r"\.")):
        validate(replace(SPEC, ci=CIOptions(**changes)), ROOT / "sample-app")


def test_every_variant_validates() -> None:
    digest = "r.example/x@sha256:" + "a" * 64
    ci = CIOptions(job_image=digest, gitlab_dind_image=digest, github_job_container=True)
    validate(replace(two_images(SPEC), ci=ci), ROOT / "sample-app")
