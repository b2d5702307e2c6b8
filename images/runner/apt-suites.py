"""Add Debian trixie beside the image's bookworm sources (same mirror), pinned low.

The job image takes docker-cli, docker-buildx, cosign and glab from trixie by name
(`PACKAGE/trixie`) and everything else from bookworm: the low pin keeps trixie from replacing a
single bookworm package (TOOLCHAIN.md: never `-t trixie`). Reads either source format
(one-line sources.list or deb822 .sources) so it works on the built-in base and on Debian's
official images alike; no mirror name is written here.
"""

from __future__ import annotations

import re
from pathlib import Path

APT = Path("/etc/apt")


def mirrors() -> list[str]:
    found: list[str] = []
    one_line = APT / "sources.list"
    if one_line.is_file():
        for line in one_line.read_text().splitlines():
            match = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", line + " ")
            if match:
                found.append(match.group(1))
    for source in sorted((APT / "sources.list.d").glob("*.sources")):
        for stanza in source.read_text().split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in stanza.splitlines() if ":" in line and line[0] != " "
            )
            if "bookworm" in fields.get("Suites", "").split():
                found += fields.get("URIs", "").split()
    return sorted(set(found))


def main() -> None:
    uris = mirrors()
    if not uris:
        raise SystemExit("no bookworm entry in the apt sources: cannot add trixie beside it")
    (APT / "sources.list.d" / "trixie.sources").write_text(
        "Types: deb\n"
        f"URIs: {' '.join(uris)}\n"
        "Suites: trixie\n"
        "Components: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    (APT / "preferences.d" / "trixie-low").write_text(
        "Package: *\nPin: release n=trixie\nPin-Priority: 100\n"
    )


if __name__ == "__main__":
    main()
