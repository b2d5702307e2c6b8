"""The one error hierarchy. Each class has its own exit code; `cli.main` prints one line and exits.

Messages say what went wrong, where, and what to do. They never carry a traceback, and they are
redacted before printing (see `pipeline.secrets`).
"""

from __future__ import annotations

from collections.abc import Sequence


class PipelineError(Exception):
    """Base class: an expected failure with a one-line explanation."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SpecError(PipelineError):
    """The spec, a flag, a reference or the CI context is wrong. Nothing was done."""

    exit_code = 2


class UsageError(SpecError):
    """A command-line argument is wrong."""


class ToolMissing(PipelineError):
    """A required external tool is not installed."""

    exit_code = 3

    def __init__(self, tool: str, hint: str) -> None:
        super().__init__(f"{tool} is not installed or not on PATH; {hint}")
        self.tool = tool
        self.hint = hint


class CommandError(PipelineError):
    """An external command exited non-zero; carries argv, exit code and output (as dagger's)."""

    exit_code = 4

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int,
        stdout: str,
        stderr: str,
        *,
        message: str = "",
        quote_output: bool = True,
    ) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        text = message or f"`{self.argv[0]} {' '.join(self.argv[1:3])}` exited {returncode}"
        tail = last_line(stderr) or last_line(stdout)
        if tail and quote_output:
            text += f": {tail}"
        super().__init__(text)


class EnvironmentProblem(PipelineError):
    """The environment is not usable: the Docker daemon is down, binfmt is missing, and so on."""

    exit_code = 5


class RegistryError(PipelineError):
    """The registry refused or failed an operation after the configured retries."""

    exit_code = 6


class AuthError(RegistryError):
    """The registry rejected the credentials (401/403). Not retried."""

    exit_code = 7


class GateFailed(PipelineError):
    """The vulnerability gate or a preflight check failed; nothing was published."""

    exit_code = 8


class PublishRefused(PipelineError):
    """Promotion would re-point an immutable tag; nothing was changed."""

    exit_code = 9


class VerifyFailed(PipelineError):
    """A signature, an attestation or the attested scan does not check out."""

    exit_code = 10


class StaleFiles(PipelineError):
    """Generated files differ from what the spec generates now."""

    exit_code = 11


class StateError(PipelineError):
    """`dist/state.json` is missing, unreadable or written for another commit: a stage ran before
    the stage it needs (run that one first, or remove dist/)."""

    exit_code = 12


class GitError(PipelineError):
    """The git checkout cannot give a release: not a repository, no commit yet, uncommitted
    changes, or git itself failing."""

    exit_code = 13


class InternalError(PipelineError):
    """An unexpected failure (a bug, or a tool or service answering what nobody expected). The CLI
    prints one redacted line naming the operation; the traceback goes to a log file."""

    exit_code = 70


class Interrupted(PipelineError):
    """Ctrl-C: stopped before promotion, so no release tag was written."""

    exit_code = 130


def last_line(text: str | bytes | None, limit: int = 400) -> str:
    """The last non-empty line of a tool's output, stripped and cut: what an error quotes."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for line in reversed((text or "").strip().splitlines()):
        if line.strip():
            return line.strip()[:limit]
    return ""
