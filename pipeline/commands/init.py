"""`pipeline init [--dry-run] [--force] [--remote NAME]`: set a git repository up for releases.

Reads the repository's Dockerfiles (the root and sub-folders) and its git remote, then writes a
commented `release.py` (loaded and validated before anything is written), a `noxfile.py` that
registers the stage sessions, and the generated CI where the services read it
(`.github/workflows/release.yml` for a GitHub remote, `.gitlab-ci.yml` for GitLab, both
without either; `--ci` chooses). Existing files are never overwritten: the
difference is printed and `--force` replaces them (an existing noxfile gets the two lines
appended instead). A second `init` changes nothing. It also says what the preflight would refuse
and how to fix it.

Bad input (outside git, no Dockerfile, a Dockerfile Docker would refuse, a remote that does not
exist) is one line and exit 2, with nothing written.
"""

from __future__ import annotations

import argparse
from pathlib import Path, PurePosixPath

from pipeline import paths, ui
from pipeline.adapters.git import read_repository
from pipeline.adopt import changes, dockerfiles, remote, render
from pipeline.adopt.changes import Change
from pipeline.emit import GITHUB_FILE, GITLAB_FILE, INSTALL_TARGETS, generate
from pipeline.errors import GitError, SpecError
from pipeline.preflight import run_preflight
from pipeline.specload import DEFAULT_FILE, LoadedSpec, load_spec

SPEC_FILE = PurePosixPath(DEFAULT_FILE)
CI_BY_CHOICE = {
    "github": (GITHUB_FILE,),
    "gitlab": (GITLAB_FILE,),
    "both": (GITHUB_FILE, GITLAB_FILE),
    "none": (),
}
# The service the remote is on gets its CI file; with no known service, both.
CI_BY_REMOTE = {"github": "github", "gitlab": "gitlab", "local": "both"}


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    del verb
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be written; write nothing"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace files that differ (an existing noxfile.py gets two lines appended)",
    )
    parser.add_argument(
        "--ci",
        choices=("github", "gitlab", "both", "none"),
        help="which CI files to write (default: the remote's service; both without one)",
    )
    parser.add_argument(
        "--remote",
        metavar="NAME",
        help="the git remote that names the registry (default: origin, else the only one)",
    )


def run(args: argparse.Namespace) -> int:
    cwd = Path.cwd()
    root = paths.project_root(cwd)
    if not (root / ".git").exists():
        raise SpecError(
            f"{cwd}: not inside a git repository; `pipeline init` sets up a repository "
            "(git init, then pipeline init)"
        )
    try:
        facts = read_repository(root)
    except GitError as exc:
        raise SpecError(exc.message) from None
    found = dockerfiles.find(facts.files)
    if not found:
        raise SpecError(
            f"{facts.root}: no Dockerfile in the repository (looked at the root and every "
            "sub-folder git does not ignore); add one, then run `pipeline init` again"
        )
    parsed = [dockerfiles.parse(path, _read(facts.root / path)) for path in found]
    destination = remote.destination(remote.choose(facts.remotes, args.remote), facts.root.name)
    drafts = render.image_drafts(parsed, destination.project)
    branch = facts.default_branch or facts.branch or "main"
    spec_text = render.release_py(drafts, destination, branch)
    spec_path = facts.root / SPEC_FILE
    drafted = load_spec(spec_path, spec_text)  # the text is a valid spec before it is written
    existing_spec = _existing(spec_path)
    keeps_own = existing_spec is not None and existing_spec != spec_text and not args.force
    # The CI files follow the spec that will be in the repository: the user's own when kept.
    loaded = load_spec(spec_path) if keeps_own else drafted
    services = CI_BY_CHOICE[args.ci or CI_BY_REMOTE[destination.kind]]
    files = {
        SPEC_FILE: spec_text,
        changes.NOXFILE: render.noxfile_py(),
        **{
            INSTALL_TARGETS[generated]: text
            for generated, text in generate(loaded, facts.root).items()
            if generated in services
        },
    }
    planned = changes.plan(files, {path: _existing(facts.root / path) for path in files})
    _describe(drafts, destination)
    _report(planned, facts.root, dry_run=args.dry_run, force=args.force)
    _preflight(loaded)
    return 0


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a Dockerfile (not UTF-8 text)") from None


def _existing(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise SpecError(f"{path}: exists and cannot be read as text ({exc})") from None


def _describe(drafts: tuple[render.ImageDraft, ...], destination: remote.Destination) -> None:
    for draft in drafts:
        d = draft.dockerfile
        detail = [f"target {d.target or 'the last stage'}"]
        if d.test_target:
            detail.append(f"test stage {d.test_target}")
        detail.append(", ".join(d.platforms or render.DEFAULT_PLATFORMS))
        ui.info(f"image {draft.name}: {d.path} ({'; '.join(detail)})")
    ui.info(f"registry: {destination.host} ({destination.kind})")


def _report(planned: tuple[Change, ...], root: Path, *, dry_run: bool, force: bool) -> None:
    for change in planned:
        writes = change.writes(force=force)
        if change.status == "current":
            ui.ok(f"{change.path} is current")
        elif change.status == "create":
            if dry_run:
                ui.info(f"would create {change.path} (printed on stdout)")
                ui.emit_stdout(f"# ---- {change.path} (would be created) ----\n{change.text}")
        elif change.status == "add-lines":
            lines = "\n".join(render.NOXFILE_LINES)
            if not writes or dry_run:
                ui.warn(
                    f"{change.path} exists and is yours: nothing added to it. To get the release "
                    f"sessions, add these two lines (--force appends them):\n{lines}"
                )
        elif not writes or dry_run:
            verb = "would be replaced" if writes else "left alone (--force replaces it)"
            ui.warn(f"{change.path} exists and differs from what init writes: {verb}")
            ui.emit_stdout(change.diff())
        if writes and not dry_run:
            target = root / change.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(change.text, encoding="utf-8")
            done = {"create": "created", "add-lines": "added the session lines to"}
            ui.ok(f"{done.get(change.status, 'replaced')} {change.path}")
    if dry_run:
        ui.info("dry run: nothing was written")
    elif not any(c.writes(force=force) for c in planned):
        ui.ok("nothing to change")


def _preflight(loaded: LoadedSpec) -> None:
    report = run_preflight(loaded)
    for finding in report.findings:
        line = changes.advice(finding)
        (ui.warn if finding.level == "error" else ui.info)(f"preflight: {line}")
    if report.errors:
        ui.warn(
            f"preflight: {len(report.errors)} problem(s) above would stop `pipeline release`; "
            "fix them, then `pipeline preflight` checks again"
        )
    else:
        ui.ok(f"preflight: no errors ({len(report.warnings)} warning(s))")
