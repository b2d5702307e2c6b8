"""Small value types for what can be wrong in interesting ways: platforms, digests, references.

A `DigestRef` can only be `[host/]repository@sha256:<64 hex>`: it is the one thing that may be
signed, attested or scanned, so signing a tag is impossible by construction. `ImageRef` is what a
person types (`host:port/repo:tag`, `repo@sha256:…`). The repository and host grammars follow the
distribution reference grammar and are shared with `pipeline.validate`.

Pure: no I/O. Malformed input raises `SpecError` naming the argument, with a close spelling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.errors import SpecError

LOCAL_HOST = "local"  # the built-in registry (pipeline.spec.LOCAL_REGISTRY)
MAX_NAME_LENGTH = 255  # distribution: the whole name (host/path) is at most 255 characters
MAX_TAG_LENGTH = 128

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_COMPONENT = r"(?:[a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])"
_HOST = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-f:.]+\])(?::(?P<port>[0-9]+))?"
)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_PLATFORM_PART = re.compile(r"[a-z0-9_]+")

REPOSITORY_WHAT = "a repository path (lowercase path components like 'acme/web', no host or scheme)"
HOST_WHAT = "a registry host (host[:port] without scheme or path, or 'local')"
TAG_WHAT = "a tag ([A-Za-z0-9_] then up to 127 of [A-Za-z0-9_.-])"
DIGEST_WHAT = "a digest (sha256:<64 lowercase hex>)"
REFERENCE_WHAT = "an image reference ([host[:port]/]repository[:tag][@sha256:<64 hex>])"


def quote_hint(close: str | None) -> str:
    """`; did you mean 'x'?` or nothing: the common tail of every one-line error."""
    return f"; did you mean '{close}'?" if close else ""


def _not(argument: str, value: object, what: str, close: str | None = None) -> SpecError:
    return SpecError(f"{argument}: {value!r} is not {what}{quote_hint(close)}")


# --- shared validators -------------------------------------------------------------------------


def is_repository(text: str, *, host_known: bool = False) -> bool:
    """A path inside a registry (`acme/web`): lowercase components, no host, no scheme.

    Standing alone, a first component with a dot is refused: `ghcr.io/acme/web` matches the
    path grammar, but every client reads `ghcr.io` as a host. Once a host precedes it
    (`host_known`), a dotted first component is a path like any other: GitLab groups and Harbor
    projects may hold dots (`registry.gitlab.com/acme.io/web`)."""
    if not isinstance(text, str) or len(text) > MAX_NAME_LENGTH:
        return False
    if not _REPOSITORY.fullmatch(text):
        return False
    first, _, rest = text.partition("/")
    return host_known or not (rest and looks_like_host(first))


def is_repository_at(text: str, host: str) -> bool:
    """A repository under the spec's registry `host`: a dotted first component is a path there
    (what `pipeline init` writes for a GitLab group `acme.io`), unless it is that host itself,
    has a port or is `localhost`. Under `local`, whose host a run may replace, the standalone
    rule holds."""
    first = text.partition("/")[0] if isinstance(text, str) else ""
    names_a_host = first == host or ":" in first or first == "localhost"
    return is_repository(text, host_known=host != LOCAL_HOST and not names_a_host)


def is_host(text: str) -> bool:
    """`host[:port]` (lowercase, no scheme, no path), an IP, `[ipv6]:port`, or `local`."""
    if not isinstance(text, str):
        return False
    if text == LOCAL_HOST:
        return True
    match = _HOST.fullmatch(text)
    if not match:
        return False
    port = match.group("port")
    return port is None or 0 < int(port) < 65536


def is_tag(text: str) -> bool:
    return isinstance(text, str) and bool(_TAG.fullmatch(text))


def split_host(host: str) -> tuple[str, int | None]:
    """`host[:port]` into the name and the port: `registry:5000` -> ('registry', 5000),
    `[::1]:5000` -> ('::1', 5000), `[::1]` -> ('::1', None), `localhost` -> ('localhost', None).
    A bare IPv6 address without brackets is all name."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return name, int(port) if port.isdigit() else None
    if host.count(":") == 1:
        name, _, port = host.partition(":")
        return name, int(port) if port.isdigit() else None
    return host, None


def is_loopback(host: str) -> bool:
    """Whether `host[:port]` names this machine (localhost, 127.0.0.0/8, ::1)."""
    name, _ = split_host(host)
    return name in ("localhost", "::1") or name.startswith("127.")


def looks_like_host(component: str) -> bool:
    """The distribution rule: a first component with '.' or ':' (or `localhost`) is a host."""
    return "." in component or ":" in component or component == "localhost"


def _strip_scheme(text: str) -> str:
    return _SCHEME.sub("", text)


def suggest_repository(text: str) -> str | None:
    """The repository probably meant: lowercased, scheme and host dropped, spaces as '-'."""
    guess = _strip_scheme(text.strip()).lower()
    guess = guess.split("@", 1)[0]
    components = [c for c in guess.split("/") if c]
    if len(components) > 1 and looks_like_host(components[0]):
        components = components[1:]
    if components and ":" in components[-1]:
        components[-1] = components[-1].split(":", 1)[0]
    cleaned = []
    for component in components:
        part = re.sub(r"[^a-z0-9._-]+", "-", component).strip("._-")
        if part:
            cleaned.append(part)
    result = "/".join(cleaned)
    return result if result != text and is_repository(result) else None


def suggest_host(text: str) -> str | None:
    """The host the user probably meant: lowercased, without scheme, path or spaces."""
    guess = _strip_scheme(text.strip()).lower().replace(" ", "")
    guess = guess.split("/", 1)[0]
    if "@" in guess:  # user:password@host
        guess = guess.rsplit("@", 1)[1]
    return guess if guess != text and is_host(guess) else None


def suggest_tag(text: str) -> str | None:
    guess = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).lstrip(".-")[:MAX_TAG_LENGTH]
    return guess if guess != text and is_tag(guess) else None


def check_repository(text: str, argument: str, *, host_known: bool = False) -> str:
    if not is_repository(text, host_known=host_known):
        raise _not(argument, text, REPOSITORY_WHAT, suggest_repository(text))
    return text


def check_host(text: str, argument: str) -> str:
    if not is_host(text):
        raise _not(argument, text, HOST_WHAT, suggest_host(text))
    return text


# --- Platform ----------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Platform:
    """`os/arch[/variant]`, e.g. `linux/arm/v7`."""

    os: str
    arch: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str, *, argument: str = "platform") -> Platform:
        parts = text.split("/") if isinstance(text, str) else []
        if not 2 <= len(parts) <= 3 or not all(_PLATFORM_PART.fullmatch(p) for p in parts):
            lowered = text.strip().lower().replace(" ", "") if isinstance(text, str) else ""
            close = lowered if lowered != text and _valid_platform_text(lowered) else None
            raise _not(argument, text, "a platform (os/arch[/variant], e.g. 'linux/amd64')", close)
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def __str__(self) -> str:
        return f"{self.os}/{self.arch}" + (f"/{self.variant}" if self.variant else "")

    @property
    def slug(self) -> str:
        """`linux/arm/v7` -> `linux-arm-v7`: safe in file, job and artifact names."""
        return str(self).replace("/", "-")


def _valid_platform_text(text: str) -> bool:
    parts = text.split("/")
    return 2 <= len(parts) <= 3 and all(_PLATFORM_PART.fullmatch(p) for p in parts)


# --- Digest ------------------------------------------------------------------------------------


class Digest(str):
    """`sha256:<64 lowercase hex>`; a `str`, so it goes wherever a digest string goes."""

    __slots__ = ()

    def __new__(cls, text: str, *, argument: str = "digest") -> Digest:
        if not isinstance(text, str) or not _DIGEST.fullmatch(text):
            close: str | None = text.strip().lower() if isinstance(text, str) else None
            if close is not None and not _DIGEST.fullmatch(close):
                close = None
            raise _not(argument, text, DIGEST_WHAT, close)
        return super().__new__(cls, text)

    @property
    def algorithm(self) -> str:
        return self.split(":", 1)[0]

    @property
    def encoded(self) -> str:
        """The hex part."""
        return self.split(":", 1)[1]

    def short(self, length: int = 12) -> str:
        """`sha256:0123456789ab` for humans; never for lookups."""
        return f"{self.algorithm}:{self.encoded[:length]}"

    @property
    def tag_form(self) -> str:
        """`sha256-<hex>`: the tag form cosign uses for `.sig`/`.att` artifacts."""
        return f"{self.algorithm}-{self.encoded}"


# --- references --------------------------------------------------------------------------------


def _split_name(name: str) -> tuple[str | None, str]:
    first, sep, rest = name.partition("/")
    if sep and looks_like_host(first):
        return first, rest
    return None, name


@dataclass(frozen=True)
class DigestRef:
    """`[host/]repository@sha256:…`: the only kind of reference signed, attested or scanned."""

    host: str | None
    repository: str
    digest: Digest

    def __post_init__(self) -> None:
        if self.host is not None:
            check_host(self.host, "reference host")
        check_repository(self.repository, "reference repository", host_known=self.host is not None)
        if not isinstance(self.digest, Digest):
            object.__setattr__(self, "digest", Digest(self.digest))

    @classmethod
    def parse(cls, text: str, *, argument: str = "reference") -> DigestRef:
        """`host:port/acme/web@sha256:…` (a tag between name and digest is refused)."""
        ref = ImageRef.parse(text, argument=argument)
        if ref.digest is None or ref.tag is not None:
            raise _not(argument, text, "a digest reference ([host/]repository@sha256:<64 hex>)")
        return cls(ref.host, ref.repository, ref.digest)

    @property
    def name(self) -> str:
        """`host/repository` (or just the repository when no host was given)."""
        return f"{self.host}/{self.repository}" if self.host else self.repository

    @property
    def digest_str(self) -> str:
        return str(self.digest)

    def __str__(self) -> str:
        return f"{self.name}@{self.digest}"


@dataclass(frozen=True)
class ImageRef:
    """A reference a person gives: `[host[:port]/]repository[:tag][@sha256:…]`."""

    host: str | None
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str, *, argument: str = "reference") -> ImageRef:
        ref = cls._parse(text)
        if ref is None:
            raise _not(argument, text, REFERENCE_WHAT, _suggest_reference(text))
        return ref

    @classmethod
    def _parse(cls, text: object) -> ImageRef | None:
        if not isinstance(text, str) or not text or _SCHEME.match(text) or text != text.strip():
            return None
        rest, at, digest_text = text.partition("@")
        digest: Digest | None = None
        if at:
            if not _DIGEST.fullmatch(digest_text):
                return None
            digest = Digest(digest_text)
        tag: str | None = None
        colon, slash = rest.rfind(":"), rest.rfind("/")
        if colon > slash:
            rest, tag = rest[:colon], rest[colon + 1 :]
        host, repository = _split_name(rest)
        ok = (
            (host is None or is_host(host))
            and is_repository(repository, host_known=host is not None)
            and (tag is None or is_tag(tag))
            and len(rest) <= MAX_NAME_LENGTH
        )
        return cls(host, repository, tag, digest) if ok else None

    @property
    def name(self) -> str:
        return f"{self.host}/{self.repository}" if self.host else self.repository

    def with_digest(self, digest: str) -> DigestRef:
        return DigestRef(self.host, self.repository, Digest(digest))

    def digest_ref(self, *, argument: str = "reference") -> DigestRef:
        """This reference as a DigestRef; a SpecError when it names only a tag."""
        if self.digest is None:
            raise _not(argument, str(self), "pinned by digest (add @sha256:<64 hex>)")
        return DigestRef(self.host, self.repository, self.digest)

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _suggest_reference(text: object) -> str | None:
    if not isinstance(text, str):
        return None
    guess = _strip_scheme(text.strip()).replace(" ", "")
    rest, at, digest = guess.partition("@")
    tag = ""
    colon, slash = rest.rfind(":"), rest.rfind("/")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon:]
    host, repository = _split_name(rest)
    parts = [host.lower()] if host else []
    parts.append(repository.lower())
    candidate = "/".join(parts) + tag + (f"@{digest.lower()}" if at else "")
    if candidate == text or ImageRef._parse(candidate) is None:
        return None
    return candidate
