"""The one seam through which every external tool runs (like nox's `command.py`).

- echoes `+ <argv>` with every known secret redacted;
- checks the tool exists before running it (ToolMissing names it and says how to get it);
- raises one error type, CommandError, carrying argv, exit code, stdout and stderr;
- never goes through a shell: argv lists only;
- a command past its `timeout` is killed and fails like any other (exit code TIMED_OUT).

It is built on `sh` (the project's required subprocess library) with `_tty_out=False`, so tools
see a pipe and write their machine-readable output, not a terminal UI.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sh

from pipeline import ui
from pipeline.errors import AuthError, CommandError, RegistryError, ToolMissing
from pipeline.retry import (
    Attempt,
    backoff,
    text_is_auth_failure,
    text_is_content_lock,
    text_is_transient,
)
from pipeline.secrets import redact
from pipeline.spec import RetryPolicy
from pipeline.toolchain.requirements import install_hint

TIMED_OUT = -1  # Result.exit_code of a command killed at its timeout


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str


def _end_group(proc: Any) -> None:
    """SIGKILL a background sh command's process group and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(sh.ErrorReturnCode):
        proc.wait()


def display(argv: Sequence[str]) -> str:
    """The echoed form of a command: shlex-joined, secrets redacted."""
    return redact(shlex.join(argv))


def which(tool: str, path: str | None = None) -> str | None:
    return shutil.which(tool, path=path)


class Runner:
    """Runs argv lists. One instance per process is enough; it is thread-safe."""

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        echo: bool = True,
        retry: RetryPolicy | None = None,
        on_retry: Callable[[Attempt], None] | None = None,
    ) -> None:
        self.retry = retry
        self.on_retry = on_retry
        self.env = dict(os.environ if env is None else env)
        # Tools installed into this interpreter's environment (the pinned Trivy wheel, zizmor)
        # are found even when that environment is not activated.
        own_bin = str(Path(sys.executable).parent)
        path = self.env.get("PATH", os.defpath)
        if own_bin not in path.split(os.pathsep):
            self.env["PATH"] = os.pathsep.join([own_bin, path])
        self.echo = echo

    def with_env(self, **extra: str) -> Runner:
        """A runner whose child environment has extra variables (DOCKER_CONFIG, SSL_CERT_FILE…)."""
        return Runner(
            env={**self.env, **extra}, echo=self.echo, retry=self.retry, on_retry=self.on_retry
        )

    def without(self, prefix: str, *, keep: tuple[str, ...] = ()) -> Runner:
        """A runner whose child environment lacks the variables starting with `prefix`."""
        env = {k: v for k, v in self.env.items() if not k.startswith(prefix) or k in keep}
        return Runner(env=env, echo=self.echo, retry=self.retry, on_retry=self.on_retry)

    def with_retry(
        self, policy: RetryPolicy, on_retry: Callable[[Attempt], None] | None = None
    ) -> Runner:
        """A runner that re-runs a command whose output shows a transient registry fault
        (5xx, 429, reset, unexpected EOF), with the policy's capped backoff."""
        return Runner(env=self.env, echo=self.echo, retry=policy, on_retry=on_retry)

    def require(self, tool: str) -> str:
        found = which(tool, self.env.get("PATH"))
        if not found:
            raise ToolMissing(tool, install_hint(tool))
        return found

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
        cwd: Path | str | None = None,
        timeout: float | None = None,
        on_stderr_line: Callable[[str], None] | None = None,
        quiet: bool = False,
        error_message: str | Callable[[Result], str] = "",
        retry_also: re.Pattern[str] | None = None,
    ) -> Result:
        """Run argv and return its result; raise CommandError on a non-zero exit when `check`.

        `error_message` starts the error's text (the output's last line follows), or, as a
        function of the result, is the whole text. With a retry policy, a failure whose output
        names a transient registry fault (or matches `retry_also`: a fault transient for this
        command alone) is run again; an authentication failure raises AuthError at once.
        """
        argv = tuple(str(a) for a in argv)
        attempt = 1
        while True:
            result = self._run_once(
                argv,
                env=env,
                stdin=stdin,
                cwd=cwd,
                timeout=timeout,
                on_stderr_line=on_stderr_line,
                quiet=quiet,
            )
            if result.exit_code == 0:
                return result
            output = result.stderr + result.stdout
            policy = self.retry
            again = (
                text_is_transient(output)
                or text_is_content_lock(output)
                or bool(retry_also and retry_also.search(output))
            )
            if policy is None or not again or attempt >= policy.attempts:
                break
            wait = backoff(policy, attempt)
            if self.on_retry is not None:
                self.on_retry(Attempt(attempt, f"{argv[0]}: {_fault_line(output)}", wait))
            time.sleep(wait)
            attempt += 1
        if check:
            output = redact(result.stderr + result.stdout)
            if text_is_auth_failure(output):
                raise AuthError(f"{argv[0]} was refused by the registry: {_fault_line(output)}")
            if self.retry is not None and text_is_transient(output):
                raise RegistryError(
                    f"{argv[0]}: the registry kept failing: {_fault_line(output)} "
                    f"(gave up after {attempt} attempts)"
                )
            whole = callable(error_message)
            raise CommandError(
                tuple(redact(a) for a in argv),
                result.exit_code,
                redact(result.stdout),
                redact(result.stderr),
                message=redact(error_message(result)) if callable(error_message) else error_message,
                quote_output=not whole,
            )
        return result

    def _run_once(
        self,
        argv: tuple[str, ...],
        *,
        env: Mapping[str, str] | None,
        stdin: str | None,
        cwd: Path | str | None,
        timeout: float | None,
        on_stderr_line: Callable[[str], None] | None,
        quiet: bool,
    ) -> Result:
        path = self.require(argv[0])
        if self.echo and not quiet:
            ui.command(display(argv))
        child_env = {**self.env, **(env or {})}
        err_lines: list[str] = []

        def _collect(line: str) -> None:
            err_lines.append(line)
            if on_stderr_line is not None:
                on_stderr_line(line.rstrip("\n"))

        options: dict[str, Any] = {
            "_return_cmd": True,
            "_ok_code": list(range(256)),
            "_tty_out": False,
            "_env": child_env,
            "_err": _collect,
            "_decode_errors": "replace",
            "_in": stdin,
            "_cwd": str(cwd) if cwd is not None else None,
        }
        if timeout is None:
            proc = sh.Command(path)(*argv[1:], **options)
        else:
            # Its own process group, so the deadline ends the whole tree (`docker` runs the
            # buildx plugin as a child; sh's own _timeout would signal `docker` alone).
            proc = sh.Command(path)(*argv[1:], _bg=True, _bg_exc=False, _new_group=True, **options)
            try:
                proc.wait(timeout=timeout)
            except sh.TimeoutException:
                _end_group(proc)
                err_lines.append(f"{argv[0]} timed out after {timeout:.0f}s (killed)\n")
                return Result(argv, TIMED_OUT, "", "".join(err_lines))
            except BaseException:  # Ctrl-C: the group is not the terminal's, so end it here
                _end_group(proc)
                raise
        stdout = proc.stdout.decode("utf-8", "replace")
        return Result(argv, int(proc.exit_code), stdout, "".join(err_lines))

    def spawn(
        self, argv: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a long-lived server (dockerd, a registry) in its own session, output to `log`.

        Servers outlive a single command, so they are the one case not run through `sh`: the
        caller owns the returned process and stops it.
        """
        argv = tuple(str(a) for a in argv)
        path = self.require(argv[0])
        if self.echo:
            ui.command(display(argv) + f"  (background, log: {log})")
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            return subprocess.Popen(
                [path, *argv[1:]],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**self.env, **(env or {})},
                start_new_session=True,
            )


def _fault_line(output: str) -> str:
    """The line of a tool's output that names the fault (for the retry log and errors)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if text_is_transient(line) or text_is_auth_failure(line) or text_is_content_lock(line):
            return line[:300]
    return lines[-1][:300] if lines else "no output"
