"""Keyless releases for real: `pipeline release`, `verify`, `promote` and `rescan` with a keyless
spec, against the Sigstore bench (a real Fulcio built from Debian's sources, our OIDC issuer
minting GitHub-shaped tokens) and real cosign. No key exists anywhere in these runs.

The spec names a CI identity (`ci="github"`, the repository and the workflow file): the release's
certificate must name exactly that workflow at exactly the release's tag. A token from another
repository or another ref signs (Fulcio certifies any valid token), but the release's own verify
refuses it, so nothing is tagged; an expired token is refused by Fulcio at signing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.bench import Bench
from tests.support.release_repo import ReleaseRepo, make_repo, release_tags
from tests.support.sigstore import SigstoreBench, clean_env

REPOSITORY = "acme/app"
WORKFLOW = ".github/workflows/release.yml"
KEYLESS_SPEC = """sign=SignPolicy(
        keyless=KeylessIdentity(
            issuer=os.environ["BENCH_GITHUB_ISSUER"],
            ci="github",
            repository="acme/app",
            workflow=".github/workflows/release.yml",
        ),
        certificate_transparency=False,  # the bench's Fulcio has no CT log
    ),"""


def _keyless_repo(folder: Path, repository: str) -> ReleaseRepo:
    repo = make_repo(folder, repository)
    repo.edit_spec(
        'sign=SignPolicy(attestations=("cyclonedx", "vuln", "provenance")),', KEYLESS_SPEC
    )
    repo.edit_spec("from pipeline.spec import (", "import os\n\nfrom pipeline.spec import (")
    repo.edit_spec("    Image,\n", "    Image,\n    KeylessIdentity,\n")
    repo.commit("keyless")
    return repo


def _env(bench: Bench, sigstore: SigstoreBench, token: str | None) -> dict[str, str]:
    """The bench's environment without any key, plus the Sigstore bench's."""
    env = clean_env(bench.env())
    for name in ("COSIGN_KEY", "COSIGN_PUBLIC_KEY", "COSIGN_PASSWORD"):
        env.pop(name, None)
    env.update(sigstore.env(token))
    env["BENCH_GITHUB_ISSUER"] = sigstore.issuer_url("github")
    env["PIPELINE_FULCIO_URL"] = sigstore.fulcio_url
    return env


def _token(sigstore: SigstoreBench, repo: ReleaseRepo, **claims: Any) -> str:
    claims.setdefault("repository", REPOSITORY)
    claims.setdefault("workflow_file", WORKFLOW)
    return sigstore.token("github", sha=repo.head, **claims)


def _run(
    bench: Bench, repo: ReleaseRepo, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return bench.pipeline(*args, cwd=repo.path, env=env)


def _errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def released(
    bench: Bench, sigstore: SigstoreBench, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ReleaseRepo, dict[str, str]]:
    repo = _keyless_repo(tmp_path_factory.mktemp("keyless") / "repo", "keyless/app")
    repo.tag("v1.0.0")
    env = _env(bench, sigstore, _token(sigstore, repo, ref="refs/tags/v1.0.0"))
    result = _run(bench, repo, env, "release")
    assert result.returncode == 0, result.stderr[-4000:]
    return repo, env


def test_a_keyless_release_verifies_by_its_workflow_identity(
    bench: Bench, sigstore: SigstoreBench, released: tuple[ReleaseRepo, dict[str, str]]
) -> None:
    repo, env = released
    tags = release_tags(bench.client(), repo.repository)
    assert {"1.0.0", "1.0", "1", "latest"} <= set(tags)
    assert len(set(tags.values())) == 1
    report = repo.report()
    assert report["status"] == "pass" and report["public_key"] is None
    assert not (repo.path / "dist" / "cosign.pub").exists(), "no key, so no public key"
    # pipeline verify, as a consumer runs it (no token needed to verify).
    verify_env = {k: v for k, v in env.items() if k != "SIGSTORE_ID_TOKEN"}
    ref = f"{bench.registry.host}/{repo.repository}:1.0.0"
    result = _run(bench, repo, verify_env, "verify", ref)
    assert result.returncode == 0, result.stderr[-3000:]
    # cosign itself, from outside the tool: exactly this workflow at exactly this tag.
    identity = f"https://github.com/{REPOSITORY}/{WORKFLOW}@refs/tags/v1.0.0"
    outside = subprocess.run(
        ["cosign", "verify", *sigstore.verify_flags(identity, "github"), ref],
        env=sigstore.cosign_env(bench.env()),
        capture_output=True,
        text=True,
        check=False,
    )
    assert outside.returncode == 0, outside.stderr
    wrong = subprocess.run(
        [
            "cosign",
            "verify",
            *sigstore.verify_flags(identity.replace("v1.0.0", "v9"), "github"),
            ref,
        ],
        env=sigstore.cosign_env(bench.env()),
        capture_output=True,
        text=True,
        check=False,
    )
    assert wrong.returncode != 0 and "no matching signatures" in wrong.stderr


def test_promote_and_rescan_work_keyless(
    bench: Bench, released: tuple[ReleaseRepo, dict[str, str]]
) -> None:
    repo, env = released
    promoted = _run(bench, repo, env, "promote", "--tag", "production")
    assert promoted.returncode == 0, promoted.stderr[-3000:]
    tags = release_tags(bench.client(), repo.repository)
    assert tags["production"] == tags["1.0.0"]
    rescan = _run(bench, repo, env, "rescan")
    assert rescan.returncode == 0, rescan.stderr[-3000:]
    assert "still meet the policy" in rescan.stderr


@pytest.mark.parametrize(
    ("case", "claims"),
    [
        ("another repository", {"repository": "evil/app"}),
        ("another ref", {"ref": "refs/heads/main"}),
        ("another workflow", {"workflow_file": ".github/workflows/other.yml"}),
    ],
)
def test_a_token_of_another_identity_signs_but_never_releases(
    bench: Bench, sigstore: SigstoreBench, tmp_path: Path, case: str, claims: dict[str, str]
) -> None:
    slug = case.replace(" ", "-")
    repo = _keyless_repo(tmp_path / "repo", f"keyless/{slug}")
    repo.tag("v2.0.0")
    claims = {"ref": "refs/tags/v2.0.0", **claims}
    env = _env(bench, sigstore, _token(sigstore, repo, **claims))
    result = _run(bench, repo, env, "release")
    assert result.returncode == 10, f"{case}: {result.stderr[-3000:]}"
    (line,) = _errors(result)
    assert "signature check failed" in line and "no matching signatures" in line, line
    assert release_tags(bench.client(), repo.repository) == {}, f"{case}: nothing is tagged"


def test_a_token_of_another_issuer_never_releases(
    bench: Bench, sigstore: SigstoreBench, tmp_path: Path
) -> None:
    repo = _keyless_repo(tmp_path / "repo", "keyless/issuer")
    repo.tag("v3.0.0")
    env = _env(bench, sigstore, sigstore.token("email", email="mallory@example.com"))
    result = _run(bench, repo, env, "release")
    assert result.returncode == 10, result.stderr[-3000:]
    (line,) = _errors(result)
    assert "signature check failed" in line, line
    assert release_tags(bench.client(), repo.repository) == {}


def test_an_expired_token_is_refused_before_building_and_by_fulcio(
    bench: Bench, sigstore: SigstoreBench, tmp_path: Path
) -> None:
    repo = _keyless_repo(tmp_path / "repo", "keyless/expired")
    repo.tag("v4.0.0")
    env = _env(bench, sigstore, _token(sigstore, repo, ref="refs/tags/v4.0.0", expired=True))
    result = _run(bench, repo, env, "release")
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = _errors(result)
    assert line.startswith("error: SIGSTORE_ID_TOKEN: the OIDC token expired at "), line
    assert "buildx" not in result.stderr
    # Fulcio refuses it too (what a token expiring during a long build meets at signing).
    image = bench.base_image
    signing = subprocess.run(
        ["cosign", "sign", *sigstore.sign_flags(), image],
        env=sigstore.cosign_env(bench.env(), env["SIGSTORE_ID_TOKEN"]),
        capture_output=True,
        text=True,
        check=False,
    )
    assert signing.returncode != 0 and "error processing the identity token" in signing.stderr
    assert release_tags(bench.client(), repo.repository) == {}


def test_no_token_is_refused_before_anything_is_built(
    bench: Bench, sigstore: SigstoreBench, tmp_path: Path
) -> None:
    repo = _keyless_repo(tmp_path / "repo", "keyless/no-token")
    repo.tag("v5.0.0")
    result = _run(bench, repo, _env(bench, sigstore, None), "release")
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = _errors(result)
    assert line.startswith("error: sign.keyless: no OIDC token for keyless signing"), line
    assert "buildx" not in result.stderr
