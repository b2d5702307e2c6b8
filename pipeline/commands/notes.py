"""`pipeline notes`: the release notes of this run, from `dist/release.json` (after publish).

Writes `dist/release-notes.md` (what the generated CI puts in a GitHub Release or a GitLab
release) and, in a GitHub job, the step outputs `version`, `<image>-repository` and
`<image>-digest` (to `$GITHUB_OUTPUT`).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from pipeline import paths, ui
from pipeline.adapters.cosign import Identity, verify_argv, verify_attestation_argv
from pipeline.emit import notes
from pipeline.errors import StateError
from pipeline.refs import DigestRef
from pipeline.spec import Spec
from pipeline.specload import load

PUBLIC_KEY_FILE = "cosign.pub"  # what the notes tell a user to save the public key as


def verify_commands(spec: Spec, report: dict[str, object]) -> dict[str, list[list[str]]]:
    """Per image, `cosign verify` and one `verify-attestation` per attestation kind, as a user
    runs them (the JSON output flag left out)."""
    policy = spec.sign
    identity = Identity(
        public_key=None if policy.keyless else PUBLIC_KEY_FILE,
        keyless=policy.keyless,
        tlog=policy.transparency_log,
        sct=policy.certificate_transparency,
    )
    context = report.get("context")
    tag = context.get("tag") if isinstance(context, dict) else None
    expected = f"refs/tags/{tag}" if tag and policy.keyless and policy.keyless.ci else None
    commands: dict[str, list[list[str]]] = {}
    images = report.get("images")
    for image in images if isinstance(images, list) else []:
        ref = DigestRef.parse(f"{image['repository']}@{image['index_digest']}")
        argvs = [verify_argv(ref, identity, expected)]
        argvs += [
            verify_attestation_argv(ref, identity, kind, expected) for kind in policy.attestations
        ]
        commands[str(image["name"])] = [_for_people(argv) for argv in argvs]
    return commands


def _for_people(argv: list[str]) -> list[str]:
    out = list(argv)
    if "--output" in out:
        at = out.index("--output")
        del out[at : at + 2]
    return out


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument(
        "--output", type=Path, help=f"where to write the notes (default: dist/{notes.NOTES_FILE})"
    )


def run(args: argparse.Namespace) -> int:
    loaded = load(getattr(args, "spec", None))
    root = paths.project_root(loaded.base_dir)
    report_path = root / paths.REPORT
    if not report_path.is_file():
        raise StateError(f"{report_path}: no release report; run `publish` first")
    report = json.loads(report_path.read_text())
    target = args.output or root / paths.DIST / notes.NOTES_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    commands = verify_commands(loaded.spec, report)
    target.write_text(notes.render(report, commands, public_key=loaded.spec.sign.keyless is None))
    ui.ok(f"wrote {target}")
    github_output = os.environ.get("GITHUB_OUTPUT")
    if github_output:
        with Path(github_output).open("a") as handle:
            for key, value in notes.outputs(report).items():
                handle.write(f"{key}={value}\n")
    return 0
