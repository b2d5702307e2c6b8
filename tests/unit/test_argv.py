"""Golden argument lists: what each adapter asks of its tool, checked without the tool."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from pipeline.adapters import cosign, docker_cli, trivy
from pipeline.adapters.runner import TIMED_OUT
from pipeline.engine.workspace import DEFAULT_BUILD_TIMEOUT, build_timeout
from pipeline.errors import SpecError, VerifyFailed
from pipeline.refs import DigestRef
from pipeline.spec import KeylessIdentity

REF = DigestRef.parse("127.0.0.1:5000/acme/web@sha256:" + "a" * 64)
KEY = cosign.Identity(key="/k/cosign.key", public_key="/k/cosign.pub")


def test_login_reads_password_from_stdin() -> None:
    argv = docker_cli.login_argv("reg:5000", "bot")
    assert argv == ["docker", "login", "--username", "bot", "--password-stdin", "reg:5000"]


def test_build_argv() -> None:
    request = docker_cli.BuildRequest(
        context=Path("/src"),
        dockerfile=Path("/src/Dockerfile"),
        platforms=("linux/amd64", "linux/arm64"),
        output_dir=Path("/dist/oci/web"),
        metadata_file=Path("/dist/oci/web.json"),
        target="runtime",
        build_args={"B": "2", "A": "1"},
        secrets=(("npm", "NPM_TOKEN"),),
        labels={"org.opencontainers.image.title": "web"},
        annotations={"org.opencontainers.image.title": "web"},
        cache_from=("type=registry,ref=reg/cache/web:web",),
        cache_to=("type=registry,ref=reg/cache/web:web,mode=max,ignore-error=true",),
        source_date_epoch=1700000000,
    )
    assert docker_cli.build_argv(request) == [
        "docker", "buildx", "build", "--progress", "plain",
        "--platform", "linux/amd64,linux/arm64",
        "--file", "/src/Dockerfile",
        "--metadata-file", "/dist/oci/web.json",
        "--output", "type=oci,dest=/dist/oci/web,tar=false,rewrite-timestamp=true",
        "--provenance=false",
        "--target", "runtime",
        "--build-arg", "A=1", "--build-arg", "B=2", "--build-arg", "SOURCE_DATE_EPOCH=1700000000",
        "--secret", "id=npm,env=NPM_TOKEN",
        "--label", "org.opencontainers.image.title=web",
        "--annotation", "index,manifest:org.opencontainers.image.title=web",
        "--cache-from", "type=registry,ref=reg/cache/web:web",
        "--cache-to", "type=registry,ref=reg/cache/web:web,mode=max,ignore-error=true",
        "/src",
    ]  # fmt: skip


def test_build_argv_on_a_builder_of_its_own() -> None:
    request = docker_cli.BuildRequest(
        context=Path(),
        dockerfile=Path("Dockerfile"),
        platforms=("linux/arm64",),
        output_dir=Path("o"),
        metadata_file=Path("m"),
        builder="pipeline-0123456789ab",
    )
    argv = docker_cli.build_argv(request)
    assert argv[:5] == ["docker", "buildx", "build", "--builder", "pipeline-0123456789ab"]


def test_remote_builder_argv_passes_tls_files_as_driver_options() -> None:
    argv = docker_cli.create_remote_builder_argv(
        "pipeline-x",
        "tcp://127.0.0.1:1234",
        ca_file=Path("/t/ca.pem"),
        cert_file=Path("/t/cert.pem"),
        key_file=Path("/t/key.pem"),
    )
    assert argv == [
        "docker", "buildx", "create", "--name", "pipeline-x", "--driver", "remote",
        "--driver-opt", "cacert=/t/ca.pem,cert=/t/cert.pem,key=/t/key.pem",
        "tcp://127.0.0.1:1234",
    ]  # fmt: skip


def test_build_argv_without_cache_or_provenance() -> None:
    request = docker_cli.BuildRequest(
        context=Path(),
        dockerfile=Path("Dockerfile"),
        platforms=("linux/amd64",),
        output_dir=Path("o"),
        metadata_file=Path("m"),
        provenance=False,
    )
    argv = docker_cli.build_argv(request)
    assert "--provenance=false" in argv
    assert not any(a.startswith("--cache") for a in argv)


def test_test_stage_only_fills_the_cache() -> None:
    argv = docker_cli.test_stage_argv(
        docker_cli.TestStageRequest(
            context=Path("/src"),
            dockerfile=Path("/src/Dockerfile"),
            target="test",
            platform="linux/amd64",
            cache_from=("type=registry,ref=reg/cache/web:web",),
        )
    )
    assert argv[argv.index("--output") + 1] == "type=cacheonly"
    assert argv[argv.index("--target") + 1] == "test"
    assert "--cache-to" not in argv


def test_trivy_scan_argv() -> None:
    argv = trivy.scan_argv(
        trivy.ScanRequest(
            target="reg/web@sha256:" + "b" * 64,
            platform="linux/arm64",
            output=Path("r.json"),
            cache_dir=Path("/c"),
            ignore_file=Path("/spec/.trivyignore.yaml"),
        )
    )
    assert argv[:2] == ["trivy", "image"]
    assert argv[-1] == "reg/web@sha256:" + "b" * 64
    pairs = dict(itertools.pairwise(argv))
    assert pairs["--platform"] == "linux/arm64"
    assert pairs["--scanners"] == "vuln"
    assert pairs["--format"] == "json"
    assert pairs["--ignorefile"] == "/spec/.trivyignore.yaml"
    assert pairs["--cache-backend"] == "memory"
    assert "--skip-db-update" in argv and "--exit-code" not in argv


def test_trivy_scan_of_a_layout_and_no_ignore_file() -> None:
    argv = trivy.scan_argv(
        trivy.ScanRequest(
            target="/dist/oci/web",
            platform="linux/amd64",
            output=Path("r.json"),
            cache_dir=Path("/c"),
            input_layout=True,
        )
    )
    assert argv[-2:] == ["--input", "/dist/oci/web"]
    assert argv[argv.index("--ignorefile") + 1] == ""


def test_trivy_db_and_convert() -> None:
    assert trivy.download_db_argv(Path("/c"), "reg/db")[-2:] == ["--db-repository", "reg/db"]
    assert "--db-repository" not in trivy.download_db_argv(Path("/c"), None)
    assert trivy.convert_argv(Path("r.json"), "sarif", Path("r.sarif")) == [
        "trivy",
        "convert",
        "--quiet",
        "--format",
        "sarif",
        "--output",
        "r.sarif",
        "r.json",
    ]


def test_cosign_sign_is_by_digest_with_annotations() -> None:
    argv = cosign.sign_argv(REF, KEY, {"b": "2", "a": "1"})
    assert argv == [
        "cosign",
        "sign",
        "--yes",
        "--key",
        "/k/cosign.key",
        "--tlog-upload=false",
        "--annotations",
        "a=1",
        "--annotations",
        "b=2",
        str(REF),
    ]
    assert str(REF).endswith("@sha256:" + "a" * 64)


def test_cosign_attest_and_verify_attestation() -> None:
    assert cosign.attest_argv(REF, KEY, "vuln", Path("v.json"))[-5:] == [
        "--type",
        "vuln",
        "--predicate",
        "v.json",
        str(REF),
    ]
    argv = cosign.verify_attestation_argv(REF, KEY, "cyclonedx")
    assert argv[:4] == ["cosign", "verify-attestation", "--key", "/k/cosign.pub"]
    assert "--insecure-ignore-tlog=true" in argv


def test_cosign_keyless_verify_uses_identity_and_tlog() -> None:
    who = KeylessIdentity(
        issuer="https://token.actions.githubusercontent.com",
        subject_regexp="^https://github.com/acme/",
    )
    argv = cosign.verify_argv(REF, cosign.Identity(keyless=who, tlog=True))
    assert "--certificate-oidc-issuer" in argv and "--certificate-identity-regexp" in argv
    assert "--insecure-ignore-tlog=true" not in argv and "--key" not in argv


def test_cosign_verify_needs_a_key() -> None:
    with pytest.raises(VerifyFailed, match="no public key"):
        cosign.verify_argv(REF, cosign.Identity(key="k"))


def test_signature_tags() -> None:
    assert cosign.signature_tag("sha256:abc") == "sha256-abc.sig"
    assert cosign.signature_tag("sha256:abc", "att") == "sha256-abc.att"


def test_verify_output_must_name_the_digest() -> None:
    good = '[{"critical": {"image": {"docker-manifest-digest": "sha256:x"}}}]'
    assert cosign.parse_verify_output(good, "sha256:x")[0]["critical"]
    with pytest.raises(VerifyFailed, match="names sha256:y"):
        cosign.parse_verify_output(good.replace("sha256:x", "sha256:y"), "sha256:x")
    with pytest.raises(VerifyFailed):
        cosign.parse_verify_output("not json", "sha256:x")


def test_a_build_killed_at_its_deadline_says_where_to_look() -> None:
    stderr = "#5 [2/3] RUN make\ndocker timed out after 60s (killed)\n"
    message = docker_cli.build_failure(stderr, TIMED_OUT)
    assert message.startswith(
        "docker buildx build gave no result within the build timeout (docker timed out after 60s"
    )
    assert "is the Docker host answering" in message and "PIPELINE_BUILD_TIMEOUT" in message


@pytest.mark.parametrize(
    ("text", "seconds"), [("", DEFAULT_BUILD_TIMEOUT), ("90", 90.0), (" 7200 ", 7200.0)]
)
def test_the_build_timeout_comes_from_the_environment(text: str, seconds: float) -> None:
    assert build_timeout({"PIPELINE_BUILD_TIMEOUT": text}) == seconds


@pytest.mark.parametrize("text", ["0", "-5", "1h", "2.5"])
def test_a_bad_build_timeout_names_the_variable(text: str) -> None:
    with pytest.raises(SpecError) as info:
        build_timeout({"PIPELINE_BUILD_TIMEOUT": text})
    assert str(info.value) == (
        f"PIPELINE_BUILD_TIMEOUT: {text!r} is not a whole number of seconds above 0"
    )


@pytest.mark.parametrize(
    "stderr",
    [
        "#7 [test 4/5] RUN sleep 1193\nERROR: Cannot connect to the Docker daemon at "
        "tcp://127.0.0.1:49153. Is the docker daemon running?\n",
        "ERROR: failed to solve: Unavailable: error reading from server: EOF\n",
        "ERROR: failed to receive status: rpc error: code = Unavailable desc = closing\n",
    ],
)
def test_a_lost_docker_host_is_never_called_failed_tests(stderr: str) -> None:
    message = docker_cli.build_failure(stderr, 1, stage="test")
    assert message.startswith("the Docker host was lost during docker buildx build: ")
    assert "tests failed" not in message and "is the Docker host answering" in message


def test_a_failing_test_stage_says_the_tests_failed() -> None:
    stderr = '#9 [test 5/5] RUN ["python3", "-m", "unittest"]\nERROR: process "/bin/sh" did not\n'
    assert docker_cli.build_failure(stderr, 1, stage="test") == (
        "the image's tests failed (stage 'test'); docker buildx build failed: "
        'process "/bin/sh" did not'
    )
    assert docker_cli.build_failure("", 2) == "docker buildx build exited 2"


def test_a_busy_content_store_is_not_a_lost_docker_host() -> None:
    stderr = (
        "#12 exporting to oci image format\n"
        "ERROR: (*service).Write failed: rpc error: code = Unavailable desc = ref "
        "layer-sha256:0879 locked for 241ms (since 2026-12-02 14:10:29 +0000 UTC): unavailable\n"
    )
    message = docker_cli.build_failure(stderr, 1)
    assert not message.startswith("the Docker host was lost")
    assert "locked for 241ms" in message
