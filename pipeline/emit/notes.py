"""Release notes for the services' releases (a GitHub Release, a GitLab release). Pure.

Written from `dist/release.json` after publish: per image the index digest and each platform's
manifest digest, the scan verdict, the tags, and the exact `cosign verify` commands that check
the signature and the attestations (with the public key inline in key mode, the identity in
keyless mode). `outputs()` gives the same facts as step outputs for later steps (GitHub's
attest-build-provenance needs the subject name and digest).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

from pipeline.gate import describe
from pipeline.spec import Spec

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


def verify_argv(spec: Spec, reference: str, *, attestation: str | None = None) -> list[str]:
    """`cosign verify` (or `verify-attestation --type T`) of `reference` as a user runs it."""
    argv = ["cosign", "verify-attestation" if attestation else "verify"]
    if attestation:
        argv += ["--type", attestation]
    keyless = spec.sign.keyless
    if keyless is None:
        argv += ["--key", "cosign.pub"]
    else:
        argv += ["--certificate-oidc-issuer", keyless.issuer]
        if keyless.subject:
            argv += ["--certificate-identity", keyless.subject]
        else:
            argv += ["--certificate-identity-regexp", keyless.subject_regexp or ".*"]
    if not spec.sign.transparency_log:
        argv.append("--insecure-ignore-tlog=true")
    return [*argv, reference]


def render(report: Mapping[str, Any], spec: Spec) -> str:
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
        lines.append(shlex.join(verify_argv(spec, reference)))
        for kind in spec.sign.attestations:
            lines.append(shlex.join(verify_argv(spec, reference, attestation=kind)))
        lines.append("```")
    key = report.get("public_key")
    if spec.sign.keyless is None and key:
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
