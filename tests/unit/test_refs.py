"""Value types: platforms, digests, digest references and user-given image references."""

from __future__ import annotations

import pytest

from pipeline import refs
from pipeline.errors import SpecError
from pipeline.refs import (
    Digest,
    DigestRef,
    ImageRef,
    Platform,
    is_host,
    is_repository,
    is_tag,
    suggest_host,
    suggest_repository,
)

HEX = "a" * 64
DIGEST = f"sha256:{HEX}"


@pytest.mark.parametrize(
    ("text", "parts", "slug"),
    [
        ("linux/amd64", ("linux", "amd64", None), "linux-amd64"),
        ("linux/arm/v7", ("linux", "arm", "v7"), "linux-arm-v7"),
        ("windows/amd64", ("windows", "amd64", None), "windows-amd64"),
    ],
)
def test_platform_parse(text: str, parts: tuple[str, str, str | None], slug: str) -> None:
    platform = Platform.parse(text)
    assert (platform.os, platform.arch, platform.variant) == parts
    assert str(platform) == text
    assert platform.slug == slug


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "amd64",
            "--platform: 'amd64' is not a platform (os/arch[/variant], e.g. 'linux/amd64')",
        ),
        (
            "Linux/AMD64",
            "--platform: 'Linux/AMD64' is not a platform (os/arch[/variant], e.g. 'linux/amd64'); "
            "did you mean 'linux/amd64'?",
        ),
        (
            "linux/arm/v7/x",
            "--platform: 'linux/arm/v7/x' is not a platform "
            "(os/arch[/variant], e.g. 'linux/amd64')",
        ),
    ],
)
def test_platform_errors(text: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        Platform.parse(text, argument="--platform")
    assert str(info.value) == message


def test_digest() -> None:
    digest = Digest(DIGEST)
    assert isinstance(digest, str)
    assert digest == DIGEST
    assert digest.algorithm == "sha256"
    assert digest.encoded == HEX
    assert digest.short() == "sha256:aaaaaaaaaaaa"
    assert digest.tag_form == f"sha256-{HEX}"


@pytest.mark.parametrize(
    ("text", "close"),
    [
        ("sha256:abc", None),
        ("sha512:" + HEX, None),
        (HEX, None),
        (f"SHA256:{'A' * 64}", f"sha256:{HEX}"),
        (f" {DIGEST} ", DIGEST),
    ],
)
def test_digest_errors(text: str, close: str | None) -> None:
    with pytest.raises(SpecError) as info:
        Digest(text, argument="--digest")
    hint = f"; did you mean '{close}'?" if close else ""
    assert str(info.value) == (
        f"--digest: {text!r} is not a digest (sha256:<64 lowercase hex>){hint}"
    )


@pytest.mark.parametrize(
    ("text", "host", "repository"),
    [
        (f"127.0.0.1:5000/acme/web@{DIGEST}", "127.0.0.1:5000", "acme/web"),
        (f"ghcr.io/acme/web@{DIGEST}", "ghcr.io", "acme/web"),
        (f"localhost/web@{DIGEST}", "localhost", "web"),
        (f"acme/web@{DIGEST}", None, "acme/web"),
        (f"local/acme/web@{DIGEST}", None, "local/acme/web"),
    ],
)
def test_digest_ref_round_trip(text: str, host: str | None, repository: str) -> None:
    ref = DigestRef.parse(text)
    assert (ref.host, ref.repository, ref.digest) == (host, repository, DIGEST)
    assert str(ref) == text
    assert ref.digest_str == DIGEST
    assert ref.name == text.split("@", maxsplit=1)[0]


@pytest.mark.parametrize(
    "text",
    [
        "ghcr.io/acme/web:1.0",  # a tag is never signed
        f"ghcr.io/acme/web:1.0@{DIGEST}",  # tag and digest: ambiguous for signing
        "ghcr.io/acme/web@sha256:abc",
        f"https://ghcr.io/acme/web@{DIGEST}",
    ],
)
def test_digest_ref_refuses_anything_else(text: str) -> None:
    with pytest.raises(SpecError) as info:
        DigestRef.parse(text, argument="REF")
    assert str(info.value).startswith(f"REF: {text!r} is not ")


def test_digest_ref_constructor_validates() -> None:
    ref = DigestRef("ghcr.io", "acme/web", DIGEST)  # type: ignore[arg-type]
    assert isinstance(ref.digest, Digest)
    with pytest.raises(SpecError):
        DigestRef("ghcr.io", "Acme/Web", Digest(DIGEST))
    with pytest.raises(SpecError):
        DigestRef("https://ghcr.io", "acme/web", Digest(DIGEST))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("acme/web", (None, "acme/web", None, None)),
        ("web:1.2.3", (None, "web", "1.2.3", None)),
        ("localhost:5000/acme/web:latest", ("localhost:5000", "acme/web", "latest", None)),
        (
            "registry.example.com/a/b/c:sha-0123456",
            ("registry.example.com", "a/b/c", "sha-0123456", None),
        ),
        (f"acme/web@{DIGEST}", (None, "acme/web", None, DIGEST)),
        (f"ghcr.io/acme/web:1@{DIGEST}", ("ghcr.io", "acme/web", "1", DIGEST)),
        ("[::1]:5000/web:x", ("[::1]:5000", "web", "x", None)),
        ("a__b/c-d.e:V_1.0-rc", (None, "a__b/c-d.e", "V_1.0-rc", None)),
    ],
)
def test_image_ref_parse(
    text: str, expected: tuple[str | None, str, str | None, str | None]
) -> None:
    ref = ImageRef.parse(text)
    assert (ref.host, ref.repository, ref.tag, ref.digest) == expected
    assert str(ref) == text


@pytest.mark.parametrize(
    ("text", "close"),
    [
        ("Acme/Web:1", "acme/web:1"),
        ("https://ghcr.io/acme/web:1", "ghcr.io/acme/web:1"),
        ("acme/my web", "acme/myweb"),
        ("acme/web:", None),
        ("acme/web:-x", None),
        ("acme//web", None),
        ("", None),
        ("acme/web@sha256:123", None),
        ("host:99999/web", None),
    ],
)
def test_image_ref_errors(text: str, close: str | None) -> None:
    with pytest.raises(SpecError) as info:
        ImageRef.parse(text, argument="REF")
    hint = f"; did you mean '{close}'?" if close else ""
    assert str(info.value) == (
        f"REF: {text!r} is not an image reference "
        f"([host[:port]/]repository[:tag][@sha256:<64 hex>]){hint}"
    )


def test_image_ref_to_digest_ref() -> None:
    ref = ImageRef.parse("ghcr.io/acme/web:1.0")
    assert str(ref.with_digest(DIGEST)) == f"ghcr.io/acme/web@{DIGEST}"
    with pytest.raises(SpecError) as info:
        ref.digest_ref(argument="REF")
    assert str(info.value) == (
        "REF: 'ghcr.io/acme/web:1.0' is not pinned by digest (add @sha256:<64 hex>)"
    )
    assert str(ImageRef.parse(f"web:1@{DIGEST}").digest_ref()) == f"web@{DIGEST}"


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("acme/web", True),
        ("web", True),
        ("a/b/c/d", True),
        ("x/a.b_c__d-e---f", True),
        ("a.b/x", False),  # a first component with a dot is a host to every client
        ("Acme/web", False),
        ("acme/web ", False),
        ("acme/web:1", False),
        ("/acme", False),
        ("acme/", False),
        ("a..b", False),
        ("a___b", False),
        ("_a", False),
        ("ghcr.io/acme/web", False),  # a host in the repository
        ("localhost/web", False),
        ("x" * 256, False),
    ],
)
def test_is_repository(text: str, ok: bool) -> None:
    assert is_repository(text) is ok


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("local", True),
        ("ghcr.io", True),
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("[::1]:443", True),
        ("my-registry.internal", True),
        ("GHCR.io", False),
        ("https://ghcr.io", False),
        ("ghcr.io/acme", False),
        ("ghcr .io", False),
        ("ghcr.io:", False),
        ("ghcr.io:0", False),
        ("ghcr.io:70000", False),
        ("-x.io", False),
        ("", False),
    ],
)
def test_is_host(text: str, ok: bool) -> None:
    assert is_host(text) is ok


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("1.2.3", True),
        ("latest", True),
        ("_x", True),
        ("-x", False),
        (".x", False),
        ("a/b", False),
        ("x" * 128, True),
        ("x" * 129, False),
    ],
)
def test_is_tag(text: str, ok: bool) -> None:
    assert is_tag(text) is ok


@pytest.mark.parametrize(
    ("text", "close"),
    [
        ("Acme/Web", "acme/web"),
        ("https://ghcr.io/acme/web", "acme/web"),
        ("ghcr.io/acme/web:1.0", "acme/web"),
        ("acme/my web", "acme/my-web"),
        ("acme/web", None),
        ("???", None),
    ],
)
def test_suggest_repository(text: str, close: str | None) -> None:
    assert suggest_repository(text) == close


@pytest.mark.parametrize(
    ("text", "close"),
    [
        ("https://ghcr.io", "ghcr.io"),
        ("https://ghcr.io/acme", "ghcr.io"),
        ("Registry.Example.com:5000", "registry.example.com:5000"),
        ("user:pw@reg.example.com", "reg.example.com"),
        ("ghcr.io", None),
        ("http://", None),
    ],
)
def test_suggest_host(text: str, close: str | None) -> None:
    assert suggest_host(text) == close


@pytest.mark.parametrize(
    ("host", "expected", "loopback"),
    [
        ("registry.example:5000", ("registry.example", 5000), False),
        ("ghcr.io", ("ghcr.io", None), False),
        ("127.0.0.1:5000", ("127.0.0.1", 5000), True),
        ("localhost", ("localhost", None), True),
        ("[::1]:5000", ("::1", 5000), True),
        ("[::1]", ("::1", None), True),
        ("[2001:db8::1]:443", ("2001:db8::1", 443), False),
        ("::1", ("::1", None), True),
    ],
)
def test_split_host(host: str, expected: tuple[str, int | None], loopback: bool) -> None:
    assert refs.split_host(host) == expected
    assert refs.is_loopback(host) is loopback


def test_after_a_host_a_dotted_first_component_is_a_path() -> None:
    """`registry.gitlab.com/acme.io/web`: the host is named, so `acme.io` is a group."""
    assert not refs.is_repository("acme.io/web")
    assert refs.is_repository("acme.io/web", host_known=True)
    assert not refs.is_repository("Acme.io/web", host_known=True)  # the grammar still holds
    ref = refs.ImageRef.parse(f"registry.gitlab.com/acme.io/web@sha256:{'a' * 64}")
    assert (ref.host, ref.repository) == ("registry.gitlab.com", "acme.io/web")
    digest = refs.DigestRef.parse(f"registry.gitlab.com/acme.io/web@sha256:{'a' * 64}")
    assert digest.name == "registry.gitlab.com/acme.io/web"


@pytest.mark.parametrize(
    ("repository", "host", "ok"),
    [
        ("acme.io/web", "registry.gitlab.com", True),
        ("acme/web", "registry.gitlab.com", True),
        ("registry.gitlab.com/acme/web", "registry.gitlab.com", False),  # the host itself
        ("localhost/web", "registry.gitlab.com", False),
        ("acme.io/web", "local", False),  # a run may name another host: the standalone rule
        ("acme/web", "local", True),
    ],
)
def test_is_repository_at(repository: str, host: str, ok: bool) -> None:
    assert refs.is_repository_at(repository, host) is ok
