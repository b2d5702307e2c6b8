"""Release notes for the services' releases (a GitHub Release, a GitLab release). Pure.

Written from `dist/release.json` after publish: per image the index digest and each platform's
manifest digest, the scan verdict, the tags, and the exact `cosign verify` commands that check
the signature and the attestations (with the public key inline in key mode, the identity in
keyless mode; the commands are built by the cosign adapter's own argv functions, so they are
the checks `pipeline verify` runs). `outputs()` gives the same facts as step outputs for later
steps (GitHub's attest-build-provenance needs the subject name and digest).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.gate import describe

NOTES_FILE = "release-notes.md"  # in dist/


def _scan(image: Mapping[str, Any]) -> str:
    scan = image.get("scan") or {}
    if not scan:
        return "not scanned in this run (the digest was reused: scanned when first built)"
    return describe(
        str(scan.get("verdict", "—")),
        scan.get("counts") or {},
        int(scan.get("unfixed_allowed") or 0),
        len(scan.get("suppressed") or []),
    )


def render(
    report: Mapping[str, Any],
    commands: Mapping[str, Sequence[Sequence[str]]],
    *,
    public_key: bool,
) -> str:
    """`commands`: per image name, the verify commands (argv) a user runs; `public_key`: put
    the release's public key in the notes (key mode)."""
    version = report.get("version") or "(no version)"
    lines = [f"Release {version} of `{str(report.get('commit', ''))[:12]}`, signed and scanned."]
    for image in report.get("images", []):
        reference = f"{image['repository']}@{image.get('index_digest') or ''}"
        lines += [
            "",
            f"## {image['name']}",
            "",
            f"`{reference}`",
            "",
            "| Platform | Manifest digest |",
            "| --- | --- |",
        ]
        for platform, digest in sorted((image.get("platforms") or {}).items()):
            lines.append(f"| {platform} | `{digest}` |")
        tags = ", ".join(f"`{t['name']}`" for t in image.get("tags", [])) or "—"
        lines += ["", f"Tags: {tags}", "", f"Scan: {_scan(image)}", "", "Verify:", "", "```sh"]
        lines += [shlex.join(argv) for argv in commands.get(image["name"], ())]
        lines.append("```")
    key = report.get("public_key")
    if public_key and key:
        lines += ["", "`cosign.pub`:", "", "```", str(key).strip(), "```"]
    return "\n".join(lines) + "\n"


def output_name(image: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", image.lower()).strip("-")


def outputs(report: Mapping[str, Any]) -> dict[str, str]:
    """Step outputs: `version`, and per image `<name>-repository` and `<name>-digest`."""
    found = {"version": str(report.get("version") or "")}
    for image in report.get("images", []):
        key = output_name(image["name"])
        found[f"{key}-repository"] = str(image["repository"])
        found[f"{key}-digest"] = str(image.get("index_digest") or "")
    return found
