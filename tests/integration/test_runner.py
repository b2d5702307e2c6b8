"""The one runner, with real processes: echo with secrets redacted, missing tools, error fields,
retries of transient faults and fast failure on authentication errors."""

from __future__ import annotations

import subprocess
import time

import pytest

from pipeline.adapters.runner import TIMED_OUT, Runner
from pipeline.errors import AuthError, CommandError, RegistryError, ToolMissing
from pipeline.retry import Attempt
from pipeline.secrets import REDACTOR
from pipeline.spec import RetryPolicy

FAST = RetryPolicy(attempts=3, initial_backoff_seconds=0.01, max_backoff_seconds=0.02)


def test_echo_redacts_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    REDACTOR.add("s3cr3t-canary-value")
    Runner().run(["echo", "token=s3cr3t-canary-value"])
    err = capsys.readouterr().err
    assert "s3cr3t-canary-value" not in err
    assert "+ echo token=***" in err


def test_missing_tool_names_it() -> None:
    with pytest.raises(ToolMissing, match="no-such-tool-xyz is not installed"):
        Runner().run(["no-such-tool-xyz", "--version"])


def test_error_carries_argv_code_and_output() -> None:
    with pytest.raises(CommandError) as info:
        Runner(echo=False).run(["sh", "-c", "echo out; echo 'the reason' >&2; exit 3"])
    exc = info.value
    assert exc.argv[0] == "sh" and exc.returncode == 3
    assert exc.stdout == "out\n" and "the reason" in exc.stderr
    assert str(exc).endswith(": the reason") and exc.exit_code == 4


def test_error_output_is_redacted() -> None:
    REDACTOR.add("another-canary-1234")
    with pytest.raises(CommandError) as info:
        Runner(echo=False).run(["sh", "-c", "echo another-canary-1234 >&2; exit 1"])
    assert "another-canary-1234" not in str(info.value) + info.value.stderr


def test_check_false_returns_result() -> None:
    result = Runner(echo=False).run(["sh", "-c", "exit 5"], check=False)
    assert result.exit_code == 5


def test_stdin_and_env() -> None:
    result = Runner(echo=False).run(["sh", "-c", 'cat; echo "$X"'], stdin="in\n", env={"X": "y"})
    assert result.stdout == "in\ny\n"


def test_transient_faults_are_retried(tmp_path: object) -> None:
    import pathlib

    marker = pathlib.Path(str(tmp_path)) / "count"
    script = (
        f"n=$(cat {marker} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {marker}; "
        'if [ $n -lt 3 ]; then echo "PUT https://r/v2/x: 503 Service Unavailable" >&2; exit 1; fi; '
        "echo done"
    )
    seen: list[Attempt] = []
    result = Runner(echo=False).with_retry(FAST, seen.append).run(["sh", "-c", script])
    assert result.stdout == "done\n"
    assert [a.number for a in seen] == [1, 2]
    assert "503 Service Unavailable" in seen[0].reason


def test_retries_are_bounded() -> None:
    seen: list[Attempt] = []
    runner = Runner(echo=False).with_retry(FAST, seen.append)
    with pytest.raises(RegistryError, match=r"kept failing: .*reset by peer \(gave up after 3"):
        runner.run(["sh", "-c", "echo 'read: connection reset by peer' >&2; exit 1"])
    assert len(seen) == FAST.attempts - 1


def test_auth_failures_fail_fast() -> None:
    seen: list[Attempt] = []
    runner = Runner(echo=False).with_retry(FAST, seen.append)
    with pytest.raises(AuthError, match="refused by the registry"):
        runner.run(["sh", "-c", "echo 'GET https://r/v2/: 401 Unauthorized' >&2; exit 1"])
    assert seen == []


def test_a_command_past_its_timeout_is_killed_and_fails_like_any_other() -> None:
    started = time.monotonic()
    with pytest.raises(CommandError) as info:
        Runner(echo=False).run(
            ["sh", "-c", "echo started >&2; sleep 30"], timeout=1, error_message="the sleeper"
        )
    assert time.monotonic() - started < 10
    exc = info.value
    assert exc.returncode == TIMED_OUT
    assert "started" in exc.stderr
    assert str(exc) == "the sleeper: sh timed out after 1s (killed)"
    sleepers = subprocess.run(["pgrep", "-f", "^sleep 30$"], capture_output=True, check=False)
    assert sleepers.stdout == b""  # killed, not left behind


def test_a_fault_transient_for_one_command_is_retried_for_it_alone(tmp_path: object) -> None:
    """`retry_also`: cosign copy's own write race (the index before its child) is run again;
    the same text from a command that did not ask for it is not."""
    import pathlib

    from pipeline.adapters.cosign import COPY_RACE

    marker = pathlib.Path(str(tmp_path)) / "count"
    line = "PUT http://r/v2/a/manifests/sha256-ab: MANIFEST_BLOB_UNKNOWN: blob unknown to registry"
    script = (
        f"n=$(cat {marker} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {marker}; "
        f"if [ $n -lt 2 ]; then echo '{line}' >&2; exit 1; fi; echo copied"
    )
    seen: list[Attempt] = []
    runner = Runner(echo=False).with_retry(FAST, seen.append)
    with pytest.raises(CommandError):
        runner.run(["sh", "-c", script])
    assert seen == [], "not transient unless the command says so"
    marker.unlink()
    assert runner.run(["sh", "-c", script], retry_also=COPY_RACE).stdout == "copied\n"
    assert [a.number for a in seen] == [1]
