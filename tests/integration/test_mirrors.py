"""A release mirrored to a second registry: the signed digest, its signature and attestations
and the same tags are copied (cosign copy, then the tags through the registry API), and the
mirror verifies on its own, from outside the tool too."""

from __future__ import annotations

from pathlib import Path

from pipeline.adapters.cosign import signature_tag
from tests.support.bench import Bench
from tests.support.release_repo import make_repo, release_tags


def test_a_release_is_mirrored_whole_and_verifies_there(bench: Bench, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "mirrored/app")
    repo.edit_spec(
        "    ci=CIOptions(",
        '    publish=PublishPolicy(mirrors=(Mirror(host=os.environ["BENCH_MIRROR"]),)),\n'
        "    ci=CIOptions(",
    )
    repo.edit_spec("from pipeline.spec import (", "import os\n\nfrom pipeline.spec import (")
    repo.edit_spec("    Image,\n", "    Image,\n    Mirror,\n    PublishPolicy,\n")
    repo.commit("mirror")
    repo.tag("v1.4.0")
    env = bench.env(BENCH_MIRROR=bench.plain.host)
    result = bench.pipeline("release", cwd=repo.path, env=env)
    assert result.returncode == 0, result.stderr[-4000:]

    primary = release_tags(bench.client(), repo.repository)
    mirror = bench.plain.client()
    copied = release_tags(mirror, repo.repository)
    assert copied == primary, "the same tags, on the same digest"
    digest = primary["1.4.0"]
    index = mirror.resolve(repo.repository, digest)
    assert index is not None and index.digest == digest
    for suffix in ("sig", "att"):
        assert mirror.resolve(repo.repository, signature_tag(digest, suffix)) is not None
    report = repo.report()
    assert report["images"][0]["mirrors"] == [f"{bench.plain.host}/{repo.repository}"]

    ref = f"{bench.plain.host}/{repo.repository}:1.4.0"
    verified = bench.pipeline("verify", ref, cwd=repo.path, env=env)
    assert verified.returncode == 0, verified.stderr[-3000:]
    outside = bench.verify_signature(ref)
    assert outside.returncode == 0, outside.stderr
    attested = bench.cosign(
        "verify-attestation",
        "--key",
        str(bench.cosign_pub),
        "--insecure-ignore-tlog=true",
        "--type",
        "cyclonedx",
        ref,
    )
    assert attested.returncode == 0, attested.stderr
