"""`pipeline <verb>`: the one entry point that nox sessions, CI jobs and people call.

The release stages come from the stage table (`pipeline.stages`); the other verbs are listed
here. Each verb lives in `pipeline.commands.<module>` with two functions,
`add_arguments(parser, verb)` and `run(args) -> int`, imported only when that verb runs so
start-up stays fast.

`main` is the error boundary: an expected failure (a `PipelineError`) is one redacted `error:` line
and its exit code; anything unexpected is one redacted line too, naming the operation, with exit
code 70 and the traceback in `dist/pipeline-debug.log` (or on the terminal with `--debug`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

from pipeline import __version__, operation, paths
from pipeline.errors import InternalError, Interrupted, PipelineError, UsageError
from pipeline.secrets import redact
from pipeline.stages import STAGES

DEBUG_LOG = paths.DIST / "pipeline-debug.log"


@dataclass(frozen=True)
class Verb:
    name: str
    module: str  # under pipeline.commands
    summary: str


VERBS: tuple[Verb, ...] = (
    Verb("init", "init", "set this git repository up: release.py, noxfile.py and the CI files"),
    Verb(
        "doctor", "doctor", "each tool's path and version, and whether multi-platform builds work"
    ),
    Verb("toolchain", "toolchain", "install and start the real tools (Debian 12 as root)"),
    Verb("tags", "tags", "print the tags the current context would publish"),
    Verb("plan", "plan", "dry run: what would be built, tagged, scanned and signed"),
    *(Verb(stage.name, stage.module, stage.summary) for stage in STAGES),
    Verb("workflows", "workflows", "generate the GitHub Actions and GitLab CI files from the spec"),
    Verb("sandbox", "sandbox", "start or stop the built-in loopback registry"),
)
BY_NAME = {verb.name: verb for verb in VERBS}


class _Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser, verb: str) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _load(verb: str) -> _Command:
    module = importlib.import_module(f"pipeline.commands.{BY_NAME[verb].module}")
    return cast(_Command, module)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--spec",
        metavar="PATH",
        default=default,
        help="the release spec (default: $PIPELINE_SPEC, [tool.pipeline] spec in pyproject.toml, "
        "else release.py, looked for from here up to the repository root)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="print the traceback of an unexpected error (also: PIPELINE_DEBUG=1)",
    )


def build_parser(verb: str | None) -> argparse.ArgumentParser:
    parser = _Parser(prog="pipeline", description="Supply-chain release orchestrator.")
    parser.add_argument("--version", action="version", version=f"pipeline {__version__}")
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    sub.required = True
    for item in VERBS:
        p = sub.add_parser(item.name, help=item.summary, description=item.summary)
        _common(p, suppress=True)
        if item.name == verb:
            _load(item.name).add_arguments(p, item.name)
    return parser


def _verb_of(argv: Sequence[str]) -> str | None:
    for token in argv:
        if token in BY_NAME:
            return token
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    verb = _verb_of(args_list)
    debug = "--debug" in args_list or os.environ.get("PIPELINE_DEBUG") == "1"
    try:
        args = build_parser(verb).parse_args(args_list)
        return _load(args.verb).run(args)
    except PipelineError as exc:
        _print_error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        stopped = Interrupted("interrupted; stopped before promotion, no release tag was written")
        _print_error(str(stopped))
        return stopped.exit_code
    except Exception as exc:  # the boundary: whatever escaped is a bug or an unexpected answer
        return _unexpected(exc, verb, debug=debug)


def _unexpected(exc: Exception, verb: str | None, *, debug: bool) -> int:
    where = operation.of(exc) or (f"pipeline {verb}" if verb else "pipeline")
    text = redact(traceback.format_exc())
    detail = redact(str(exc)).strip().splitlines()
    line = f"unexpected failure during {where}: {type(exc).__name__}"
    if detail:
        line += f": {detail[0][:300]}"
    if debug:
        sys.stderr.write(text)
    else:
        log = _write_debug_log(text)
        line += f" (traceback in {log}; --debug prints it)" if log else " (run with --debug)"
    _print_error(line)
    return InternalError.exit_code


def _write_debug_log(text: str) -> Path | None:
    try:
        target = paths.project_root(Path.cwd()) / DEBUG_LOG
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    except OSError:
        return None
    return target


def _print_error(message: str) -> None:
    sys.stderr.write(f"error: {redact(message).replace(chr(10), ' ')}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
