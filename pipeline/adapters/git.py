"""git: the facts of the local checkout. The only module that uses GitPython.

GitPython is imported inside the function (it costs ~0.1 s and starts `git version`), so commands
that never read git do not pay for it. Refs, tags and config are read in Python; HEAD (sha,
commit time, tags pointing at it) and the dirty check take one `git` command each.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.adopt.repository import RepositoryFacts
from pipeline.context import GitFacts, utc_from_epoch
from pipeline.errors import GitError, last_line

if TYPE_CHECKING:
    import git

_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?!//)(?P<path>.+)$")
_URL = re.compile(r"^(?P<scheme>[a-z+]+)://(?:[^@/]*@)?(?P<host>[^/:]+)(?::\d+)?/(?P<path>.+)$")


def read_git_facts(path: Path) -> GitFacts:
    """HEAD, its commit time, branch, tags at HEAD, all tags, dirty state of the repo at `path`.

    A folder outside any git repository, a repository without a commit, or a missing `git`
    executable is a GitError with one line saying what to do.
    """
    try:
        import git
    except ImportError as exc:  # GitPython raises ImportError when no git executable works
        raise GitError(f"git: cannot be used ({exc}); install git") from None

    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise GitError(
            f"{path.resolve()}: not inside a git repository; a release is built from a commit "
            "(git init && git add -A && git commit)"
        ) from None
    try:
        return _facts(repo)
    except git.GitCommandError as exc:
        raise GitError(f"git: {_git_reason(exc.stderr) or exc} (in {repo.working_dir})") from None
    finally:
        repo.close()


def read_repository(path: Path) -> RepositoryFacts:
    """The work tree's root, its remotes, branch and files (tracked, and untracked but not
    ignored): what `pipeline init` reads. Works before the first commit."""
    try:
        import git
    except ImportError as exc:
        raise GitError(f"git: cannot be used ({exc}); install git") from None
    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise GitError(f"{path.resolve()}: not inside a git repository") from None
    try:
        if repo.working_tree_dir is None:
            raise GitError(f"{path.resolve()}: a bare repository has no work tree")
        listed = str(repo.git.ls_files("-z", "--cached", "--others", "--exclude-standard"))
        try:
            branch: str | None = repo.active_branch.name
        except TypeError:  # a detached HEAD
            branch = None
        return RepositoryFacts(
            root=Path(repo.working_tree_dir),
            remotes={remote.name: remote.url for remote in repo.remotes},
            branch=branch,
            default_branch=_origin_head(repo),
            files=tuple(sorted({name for name in listed.split("\0") if name})),
        )
    except git.GitCommandError as exc:
        raise GitError(f"git: {_git_reason(exc.stderr) or exc} (in {repo.working_dir})") from None
    finally:
        repo.close()


def _facts(repo: git.Repo) -> GitFacts:
    if not repo.head.is_valid():
        raise GitError(f"{repo.working_dir}: the git repository has no commit yet; commit first")
    sha, epoch, head_tags = _head(repo)
    return GitFacts(
        sha=sha,
        commit_time=utc_from_epoch(epoch),
        branch=None if repo.head.is_detached else repo.active_branch.name,
        head_tags=head_tags,
        tags=tuple(sorted(t.name for t in repo.tags)),
        dirty=_dirty(repo),
        default_branch=_origin_head(repo),
        remote_url=_origin_url(repo),
        shallow=(Path(repo.git_dir) / "shallow").is_file(),
    )


def _head(repo: git.Repo) -> tuple[str, int, tuple[str, ...]]:
    """HEAD's sha, committer time and the tags pointing at it, from one `git log`.

    `%D` restricted to tags lists them as `tag: NAME, tag: NAME` (ref names hold no spaces);
    annotated tags are peeled to the commit.
    """
    output = repo.git.log(
        "-1",
        "--no-show-signature",
        "--format=%H%x00%ct%x00%D",
        "--decorate-refs=refs/tags/",
        "HEAD",
    )
    sha, epoch, decorations = str(output).strip().split("\x00")
    tags = sorted(
        item.removeprefix("tag: ") for item in decorations.split(", ") if item.startswith("tag: ")
    )
    return sha, int(epoch), tuple(tags)


def _dirty(repo: git.Repo) -> bool:
    """Tracked files changed, staged or not (one `git status`; it takes no index lock)."""
    output = repo.git.execute(
        ["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"]
    )
    return bool(str(output).strip())


def _origin_head(repo: git.Repo) -> str | None:
    import git

    ref = git.SymbolicReference(repo, "refs/remotes/origin/HEAD")
    try:
        target = ref.reference.name  # "origin/main"
    except (ValueError, TypeError, OSError):
        return None
    return target.removeprefix("origin/") or None


def _origin_url(repo: git.Repo) -> str | None:
    try:
        url = repo.remotes["origin"].url
    except (IndexError, KeyError, ValueError, AttributeError):
        return None
    return browsable_url(url)


def browsable_url(url: str) -> str | None:
    """A remote URL as `https://host/path`, never with credentials; None for local paths."""
    url = url.strip()
    if match := _URL.match(url):
        if match.group("scheme") == "file":
            return None
        host, path = match.group("host"), match.group("path")
    elif (match := _SCP_LIKE.match(url)) and not url.startswith(("/", ".")):
        host, path = match.group("host"), match.group("path")
    else:
        return None
    path = path.strip("/").removesuffix(".git")
    return f"https://{host}/{path}" if path else None


def _git_reason(stderr: str | bytes | None) -> str:
    """GitPython quotes git's stderr as `stderr: '…'`: the last line, unquoted."""
    return last_line(stderr).removeprefix("stderr: ").strip("'")


@contextlib.contextmanager
def detached_checkout(path: Path, commit: str, dest: Path) -> Iterator[Path]:
    """A clean work tree of `commit` at `dest` (a `git worktree` of the repository holding
    `path`), removed afterwards: what `pipeline rebuild-check` builds from."""
    import git

    repo = git.Repo(path, search_parent_directories=True)
    try:
        repo.git.worktree("add", "--detach", "--force", str(dest), commit)
    except git.GitCommandError as exc:
        repo.close()
        raise GitError(
            f"git: cannot check out {commit[:12]} ({_git_reason(exc.stderr) or exc}); "
            "fetch it first"
        ) from None
    try:
        yield dest
    finally:
        with contextlib.suppress(git.GitCommandError):
            repo.git.worktree("remove", "--force", str(dest))
        repo.close()


def commit_epoch(path: Path, commit: str) -> int:
    """The committer time of `commit` (seconds since the epoch)."""
    import git

    repo = git.Repo(path, search_parent_directories=True)
    try:
        return int(str(repo.git.log("-1", "--no-show-signature", "--format=%ct", commit)).strip())
    except git.GitCommandError as exc:
        raise GitError(f"git: no commit {commit[:12]} here ({_git_reason(exc.stderr)})") from None
    finally:
        repo.close()
