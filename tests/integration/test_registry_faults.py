"""Registry faults injected by a real proxy in front of the real bench registry.

Client level: retries of 429 (Retry-After honoured), 5xx, resets and stalls; fast failure on
401/403/404. Release level: a release survives 20 transient faults; under persistent faults it
fails with one clear line and the registry (read directly, not through the tool's report) holds
no release tag; a promotion failing part-way is reported tag by tag and a re-run finishes it.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from pathlib import Path

import pytest

from pipeline.adapters.registry import Manifest, RegistryClient
from pipeline.errors import AuthError, RegistryError
from pipeline.oci import digest_of
from pipeline.retry import Attempt
from pipeline.spec import RetryPolicy
from tests.support.bench import Bench
from tests.support.faultproxy import Fault, FaultProxy, Request, by_agent, tag_put
from tests.support.release_repo import make_repo, release_tags

# The proxy breaks TLS connections on purpose (half a body, then close; abort after forwarding).
# asyncio may release such a socket only when it is garbage-collected after the proxy's loop has
# stopped; that is the test's own machinery, so only these two warnings are let through here.
pytestmark = pytest.mark.filterwarnings(
    "ignore:unclosed:ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning"
)

FAST = RetryPolicy(attempts=6, initial_backoff_seconds=0.05, max_backoff_seconds=2.0)


def _client(
    bench: Bench, proxy: FaultProxy, seen: list[Attempt] | None = None, **kwargs: object
) -> RegistryClient:
    return RegistryClient(
        proxy.host,
        credentials=bench.registry.credentials,
        ca_file=bench.registry.ca_file,
        retry=FAST,
        on_retry=seen.append if seen is not None else None,
        plain_http=False,  # the proxy speaks TLS: no scheme probe to absorb a scheduled fault
        **kwargs,  # type: ignore[arg-type]
    )


def _artifact(client: RegistryClient, repository: str, tag: str, size: int = 200_000) -> str:
    config, layer = b"{}", bytes(range(256)) * (size // 256)
    client.push_blob(repository, config)
    client.push_blob(repository, layer)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": digest_of(config),
                "size": 2,
            },
            "layers": [
                {
                    "mediaType": "application/octet-stream",
                    "digest": digest_of(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    return client.put_manifest(
        repository,
        tag,
        Manifest(digest_of(body), "application/vnd.oci.image.manifest.v1+json", body),
    )


def test_client_survives_twenty_transient_faults(bench: Bench, proxy: FaultProxy) -> None:
    mine = by_agent("python-requests")
    kinds = ["503", "500", "429", "reset", "slow"]
    # 20 faults, 4 of each kind, on the requests a push and a read-back make.
    proxy.schedule.faults += [Fault(kind, mine, times=4) for kind in kinds]
    proxy.schedule.every = 4  # an upload (HEAD, POST, PUT) is retried whole: space the faults
    seen: list[Attempt] = []
    with _client(bench, proxy, seen) as client:
        _survive(client, proxy, seen)
    # The registry itself (not through the proxy) holds the right data.
    assert bench.client().digest_of("faults/client", "v1") is not None


def _survive(client: RegistryClient, proxy: FaultProxy, seen: list[Attempt]) -> None:
    digest = _artifact(client, "faults/client", "v1")
    layer = json.loads(client.resolve("faults/client", "v1").body)["layers"][0]["digest"]  # type: ignore[union-attr]
    for _ in range(80):  # bounded: read back until every scheduled fault has been injected
        if all(fault.times == 0 for fault in proxy.schedule.faults):
            break
        assert client.digest_of("faults/client", "v1") == digest
        assert digest_of(client.get_blob("faults/client", layer)) == layer
    assert sum(proxy.injected.values()) == 20, proxy.log
    assert proxy.injected == {"503": 4, "500": 4, "429": 4, "reset": 4, "slow": 4}
    slow_not_retried = 4  # a stalled answer still arrives: nothing to retry
    assert len(seen) == 20 - slow_not_retried
    assert all(a.reason for a in seen)


def test_retry_after_is_honoured(bench: Bench, proxy: FaultProxy) -> None:
    proxy.schedule.faults.append(Fault("429", by_agent("python-requests"), times=1))
    seen: list[Attempt] = []
    started = time.monotonic()
    with _client(bench, proxy, seen) as client:
        client.tags("faults/none")
    assert time.monotonic() - started >= 1.0
    assert [a.wait for a in seen] == [1.0]


def test_persistent_faults_give_up_with_one_clear_line(bench: Bench, proxy: FaultProxy) -> None:
    proxy.schedule.faults.append(Fault("503", by_agent("python-requests"), persistent=True))
    with pytest.raises(RegistryError) as info, _client(bench, proxy) as client:
        client.tags("faults/none")
    message = str(info.value)
    assert (
        proxy.host in message
        and "HTTP 503" in message
        and f"gave up after {FAST.attempts} attempts" in message
    )
    assert "\n" not in message
    assert proxy.injected["503"] == FAST.attempts


@pytest.mark.parametrize(
    ("status", "error"), [("401", AuthError), ("403", AuthError), ("404", RegistryError)]
)
def test_permanent_statuses_fail_fast(
    bench: Bench, proxy: FaultProxy, status: str, error: type[Exception]
) -> None:
    manifest_put = lambda r: r.method == "PUT" and "/manifests/" in r.path  # noqa: E731
    proxy.schedule.faults.append(Fault(status, manifest_put, persistent=True))
    with _client(bench, proxy) as client:
        _fail_fast(client, proxy, error)


def _fail_fast(client: RegistryClient, proxy: FaultProxy, error: type[Exception]) -> None:
    client.push_blob("faults/fast", b"x")
    before = proxy.requests["PUT"]
    body = b'{"schemaVersion":2}'
    with pytest.raises(error):
        client.put_manifest(
            "faults/fast",
            "v1",
            Manifest(digest_of(body), "application/vnd.oci.image.manifest.v1+json", body),
        )
    assert proxy.requests["PUT"] - before == 1, "exactly one attempt"


# --- whole releases through the proxy ------------------------------------------------------------


def _release(bench: Bench, repo_path: Path, proxy: FaultProxy) -> subprocess.CompletedProcess[str]:
    """A release whose registry and Trivy DB mirror are both reached through the proxy."""
    db = bench.db_repository.replace(bench.registry.host, proxy.host)
    env = bench.env(PIPELINE_REGISTRY=proxy.host, PIPELINE_TRIVY_DB_REPOSITORY=db)
    return bench.pipeline("release", cwd=repo_path, env=env)


def test_release_survives_twenty_transient_faults(
    bench: Bench, proxy: FaultProxy, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo", "faults/release")
    repo.tag("v1.0.0")
    client, cosign = by_agent("python-requests"), by_agent("cosign")

    def trivy_db(r: Request) -> bool:  # Trivy's DB pull
        return "/trivy-db/" in r.path and r.method == "GET"

    def manifests(r: Request) -> bool:
        return "/manifests/" in r.path

    def blob_put(r: Request) -> bool:
        return r.method == "PUT" and "/blobs/" in r.path

    def manifest_put(r: Request) -> bool:
        return r.method == "PUT" and manifests(r)

    # Disjoint targets, each fault on every other (cosign: every third) request it matches, so a
    # retried request is never broken twice in a row whatever runs alongside: exactly 20 land.
    proxy.schedule.faults += [
        Fault("reset", lambda r: client(r) and blob_put(r), times=2, spaced=False, every=2),
        Fault("503", lambda r: client(r) and manifest_put(r), times=3, spaced=False, every=2),
        Fault("500", lambda r: client(r) and r.method == "HEAD", times=3, spaced=False, every=2),
        Fault("429", lambda r: client(r) and r.method == "GET", times=2, spaced=False, every=2),
        Fault("slow", lambda r: client(r) and tag_put(r), times=2, spaced=False),
        Fault("503", lambda r: cosign(r) and manifests(r), times=4, spaced=False, every=3),
        Fault("503", trivy_db, times=4, spaced=False),
    ]
    result = _release(bench, repo.path, proxy)
    assert result.returncode == 0, result.stderr[-5000:] + "\n".join(proxy.log)
    left = [(f.kind, f.times) for f in proxy.schedule.faults if f.times]
    assert sum(proxy.injected.values()) == 20, f"not injected: {left}; agents: {dict(proxy.agents)}"
    assert "retry 1 in" in result.stderr
    tags = release_tags(bench.client(), repo.repository)
    assert set(tags) == {"1.0.0", "1.0", "1", "latest", f"sha-{repo.head[:7]}"}
    assert len(set(tags.values())) == 1
    verify = bench.verify_signature(f"{bench.registry.host}/{repo.repository}:1.0.0")
    assert verify.returncode == 0, verify.stderr


def test_persistent_faults_leave_no_release_tag_and_a_rerun_completes(
    bench: Bench, proxy: FaultProxy, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo", "faults/persistent")
    repo.tag("v2.0.0")
    ours = by_agent("python-requests")  # the promotion's tag writes (not cosign's .sig tags)
    proxy.schedule.faults.append(Fault("503", lambda r: ours(r) and tag_put(r), persistent=True))
    failed = _release(bench, repo.path, proxy)
    assert failed.returncode == 6, failed.stderr[-3000:]
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert (
        len(errors) == 1
        and "gave up after 5 attempts" in errors[0]
        and "re-run to finish" in errors[0]
    )
    assert release_tags(bench.client(), repo.repository) == {}, (
        "no release tag at all, so none on an unverified digest"
    )

    proxy.schedule.clear()
    again = _release(bench, repo.path, proxy)
    assert again.returncode == 0, again.stderr[-3000:]
    tags = release_tags(bench.client(), repo.repository)
    assert (
        set(tags) == {"2.0.0", "2.0", "2", "latest", f"sha-{repo.head[:7]}"}
        and len(set(tags.values())) == 1
    )


def test_promotion_failing_part_way_is_reported_and_a_rerun_finishes(
    bench: Bench, proxy: FaultProxy, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo", "faults/partway")
    repo.tag("v3.0.0")
    written = itertools.count()
    # The first two tag writes go through (the immutable ones come first), then the registry fails.
    ours = by_agent("python-requests")  # the promotion's tag writes (not cosign's .sig/.att)
    proxy.schedule.faults.append(
        Fault("503", lambda r: ours(r) and tag_put(r) and next(written) >= 2, persistent=True)
    )
    failed = _release(bench, repo.path, proxy)
    assert failed.returncode == 6, failed.stderr[-3000:]
    assert "2 of 5 tag(s) published" in failed.stderr, failed.stderr[-1500:] + "\n".join(
        proxy.log[-5:]
    )
    assert "FAILED" in failed.stderr and "not written" in failed.stderr
    partial = release_tags(bench.client(), repo.repository)
    assert set(partial) == {"3.0.0", f"sha-{repo.head[:7]}"}, "immutable tags first"

    proxy.schedule.clear()
    again = _release(bench, repo.path, proxy)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "reusing signed" in again.stderr, "the commit's sha tag exists: nothing is rebuilt"
    tags = release_tags(bench.client(), repo.repository)
    assert set(tags) == {"3.0.0", "3.0", "3", "latest", f"sha-{repo.head[:7]}"}
    assert set(tags.values()) == set(partial.values())


def test_request_dataclass_is_what_predicates_see() -> None:
    request = Request("PUT", "/v2/a/b/manifests/1.0.0", "python-requests/2.32")
    assert tag_put(request) and by_agent("python-requests")(request)
    assert not tag_put(Request("PUT", "/v2/a/manifests/sha256:" + "a" * 64, "x"))
