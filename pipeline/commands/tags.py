"""`pipeline tags [--spec PATH] [--json]`: the tags the current context would publish.

Plain output: one tag per line (no repository) on stdout, warnings on stderr. `--json` prints one
object::

    {"version": "1.2.3" | null,
     "tags": ["1.2.3", "1.2", "1", "latest", "sha-0123abc"],
     "immutable": ["1.2.3", "sha-0123abc"],
     "publish": true,                      # false for pull requests: build and scan only
     "warnings": [...],
     "labels": {"<image name>": {"org.opencontainers.image.title": ..., ...}},
     "context": {"system": ..., "event": ..., "sha": ..., ...}}

Labels are per image (keyed by the image's `name`); the tags are the same for every image.
Start-up matters (CI calls it in every job): rich is not imported, GitPython only to read git.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from pipeline import labels
from pipeline.engine.loading import load_release
from pipeline.secrets import redact


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help="print version, tags, labels (per image) and the detected context as JSON",
    )


def run(args: argparse.Namespace) -> int:

    def warn(text: str) -> None:
        sys.stderr.write(redact(f"warning: {text}") + "\n")

    loaded, ctx, tagset = load_release(getattr(args, "spec", None), os.environ, on_warning=warn)
    if args.json:
        document = {
            "version": tagset.version,
            "tags": list(tagset.names),
            "immutable": [t.name for t in tagset.tags if t.immutable],
            "publish": tagset.publish,
            "warnings": list(tagset.warnings),
            "labels": {
                image.name: labels.oci_labels(image, loaded.spec, ctx, tagset.version)
                for image in loaded.spec.images
            },
            "context": ctx.to_json(),
        }
        text = json.dumps(document, indent=2, sort_keys=True)
    else:
        text = "\n".join(tagset.names)
    if text:
        sys.stdout.write(redact(text) + "\n")
    sys.stdout.flush()
    return 0
