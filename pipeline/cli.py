"""`pipeline <verb>`: the one entry point that nox sessions, CI jobs and people call.

Each verb lives in `pipeline.commands.<module>` with two functions, `add_arguments(parser)` and
`run(args) -> int`, imported only when that verb runs so start-up stays fast. `main` is the one
place that turns a PipelineError into a single redacted line and its exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

# verb -> (module under pipeline.commands, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "doctor": (
        "doctor",
        "print each tool's path and version and whether multi-platform builds work",
    ),
    "toolchain": (
        "toolchain",
        "install and start the real tools (Debian 12 as root), or say what is missing",
    ),
    "tags": ("tags", "print the tags the current context would publish"),
    "plan": ("plan", "dry run: what would be built, tagged, scanned and signed"),
    "preflight": ("preflight", "check Dockerfiles and build contexts against the preflight policy"),
    "build": ("build", "multi-platform build, pushed by digest only (no tags)"),
    "merge": ("merge", "join per-platform builds from separate jobs into one index"),
    "scan": ("scan", "Trivy scan of every platform image by digest; the vulnerability gate"),
    "sign": ("sign", "cosign sign the index digest and attach SBOM and scan attestations"),
    "publish": ("publish", "point the computed tags at the signed digest (promotion)"),
    "release": ("release", "everything: preflight, build, scan, sign, publish, report"),
    "verify": ("verify", "check signature, attestations and attested scan of an image reference"),
    "promote": (
        "promote",
        "verify a digest, then point a floating tag at it (production, rollback)",
    ),
    "workflows": ("workflows", "generate the GitHub Actions and GitLab CI files from the spec"),
    "sandbox": ("sandbox", "start or stop the built-in loopback registry, base image and Trivy DB"),
}


class _Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _load(verb: str) -> _Command:
    module = importlib.import_module(f"pipeline.commands.{VERBS[verb][0]}")
    return cast(_Command, module)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        from pipeline.errors import UsageError

        raise UsageError(f"{self.prog}: {message}")


def build_parser(verb: str | None) -> argparse.ArgumentParser:
    parser = _Parser(prog="pipeline", description="Supply-chain release orchestrator.")
    parser.add_argument(
        "--spec",
        metavar="PATH",
        help="the spec file (default: [tool.pipeline] spec in pyproject.toml, else ./release.py)",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    sub.required = True
    for name, (_, help_text) in VERBS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--spec", metavar="PATH", default=argparse.SUPPRESS, help="the release spec file"
        )
        if name == verb:
            _load(name).add_arguments(p)
    return parser


def _verb_of(argv: Sequence[str]) -> str | None:
    for token in argv:
        if token in VERBS:
            return token
    return None


def main(argv: Sequence[str] | None = None) -> int:
    from pipeline.errors import Interrupted, PipelineError

    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        verb = _verb_of(args_list)
        args = build_parser(verb).parse_args(args_list)
        return _load(args.verb).run(args)
    except PipelineError as exc:
        _print_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        exc2 = Interrupted("interrupted; stopped before promotion, no release tag was written")
        _print_error(exc2)
        return exc2.exit_code


def _print_error(exc: Exception) -> None:
    from pipeline.secrets import redact

    message = redact(str(exc)).replace("\n", " ")
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
