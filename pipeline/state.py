"""The state file stages hand to each other (`dist/state.json`): digests, verdicts, signatures.

A CI job that builds writes it; the scan job reads it and adds verdicts; sign adds signatures;
publish adds tags. Each stage refuses a state written for another commit, so artifacts from two
pipelines can never be mixed. It holds no secret: references, digests and counts only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import SpecError, StateError
from pipeline.gate import describe

SCHEMA = 1


@dataclass
class ScanState:
    verdict: str  # pass | fail
    counts: dict[str, int]
    blocking: list[dict[str, Any]]
    unfixed_allowed: int
    reports: dict[str, dict[str, str]] = field(default_factory=dict)  # platform -> fmt -> path
    # Findings the ignore file suppressed: id, package, severity, platform, statement, source.
    suppressed: list[dict[str, str]] = field(default_factory=list)
    # Where the vulnerability DB came from: source, digest, UpdatedAt, fixture (yes/no).
    database: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return describe(self.verdict, self.counts, self.unfixed_allowed, len(self.suppressed))


@dataclass
class TagState:
    name: str
    immutable: bool
    result: str = "pending"  # created | moved | unchanged | pending | failed
    previous: str | None = None  # the digest a floating tag pointed at before


@dataclass
class ImageState:
    name: str
    repository: str  # host/path, no tag
    index_digest: str | None = None
    platforms: dict[str, str] = field(default_factory=dict)  # platform -> manifest digest
    # The build's OCI layout: the image itself for a pull request (nothing pushed); for a push,
    # a local copy of the pushed blobs that the scan reads, then removes.
    layout: str | None = None
    reused: bool = False  # promoted from an earlier signed build of the same commit
    scan: ScanState | None = None
    signature: str | None = None  # registry reference of the signature
    attestations: list[str] = field(default_factory=list)
    verified: bool = False
    tags: list[TagState] = field(default_factory=list)
    mirrors: list[str] = field(default_factory=list)
    # What the build used, for the provenance: build arguments and base images [reference, digest].
    build_args: dict[str, str] = field(default_factory=dict)
    base_images: list[list[str | None]] = field(default_factory=list)
    context_digest: str | None = None  # the files the build was sent (pipeline.engine.buildcontext)
    # Change detection: the digest over every input of the build (pipeline.engine.changes), and,
    # when an earlier signed release had the same inputs, its version (reused, re-signed).
    inputs: str | None = None
    unchanged_since: str | None = None
    needs: list[str] = field(default_factory=list)  # spec images it is built FROM
    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds, this image's
    spans: dict[str, list[float]] = field(default_factory=dict)  # step -> [start, end], epoch s
    error: str | None = None  # what stopped this image, when one did

    @property
    def digest_ref(self) -> str:
        if not self.index_digest:
            raise SpecError(f"image {self.name}: no index digest in the state; run `build` first")
        return f"{self.repository}@{self.index_digest}"


@dataclass
class State:
    commit: str
    version: str | None
    context: dict[str, Any]
    images: dict[str, ImageState] = field(default_factory=dict)
    stages: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    public_key: str | None = None
    schema: int = SCHEMA
    run_id: str = ""  # the run that wrote it last (release.json and release.env carry the same)
    started_at: str | None = None  # when that run started (UTC)

    def done(self, stage: str, seconds: float) -> None:
        if stage not in self.stages:
            self.stages.append(stage)
        self.timings[stage] = round(self.timings.get(stage, 0.0) + seconds, 2)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, origin: str = "state") -> State:
        try:
            data = json.loads(text)
            images = {name: _image(value) for name, value in (data.pop("images", {}) or {}).items()}
            if data.get("schema") != SCHEMA:
                raise StateError(f"{origin}: state schema {data.get('schema')} is not {SCHEMA}")
            return cls(images=images, **data)
        except (json.JSONDecodeError, TypeError, KeyError, AttributeError) as exc:
            raise StateError(f"{origin}: not a pipeline state file ({exc})") from None


def _image(data: dict[str, Any]) -> ImageState:
    scan = data.pop("scan", None)
    tags = data.pop("tags", [])
    return ImageState(
        scan=ScanState(**scan) if scan else None,
        tags=[TagState(**tag) for tag in tags],
        **data,
    )


def load(path: Path, *, commit: str | None = None) -> State:
    if not path.is_file():
        raise StateError(f"{path}: no state file; run the earlier stage (build) first")
    state = State.from_json(path.read_text(), origin=str(path))
    if commit and state.commit != commit:
        raise StateError(
            f"{path}: written for commit {state.commit[:12]}, but this is {commit[:12]}; "
            "remove dist/ or run the stages for this commit"
        )
    return state


def save(state: State, path: Path) -> None:
    """Write atomically, so an interrupted stage never leaves half a state file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(state.to_json())
    tmp.replace(path)
