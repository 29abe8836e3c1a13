"""The one place tiers runs ``git``: the repository a tiers.toml lives in, read-only.

Every call goes through the ``git`` command (never a library), with no terminal prompt
and the C locale, and every failure is turned into tiers' own errors: unusable input
(not a repository, an unknown ref) is a UsageError, a git operation that ran and failed
an OperationError, each naming what is wrong and how to fix it.

>>> repo = Repo.find(Path("tiers.toml"))                          # doctest: +SKIP
>>> sha = repo.resolve("main")
>>> repo.short(sha)
'1b2c3d4'
>>> repo.export(sha, Path(".tiers/releases") / sha)               # the committed tree only
PosixPath('.tiers/releases/1b2c3d4e...')
>>> [c.subject for c in repo.log(None, sha)][:1]
['Fix the login page']
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tiers.errors import OperationError, UsageError

__all__ = ["Commit", "Repo", "user_email"]

_MISSING = "git not found on PATH; install it: apt-get install git"
_BRANCHES_SHOWN = 10
# Variables a git hook (or a caller) may have set that would point git at another
# repository, work tree or index than the one in ``cwd``; tiers always means ``cwd``.
_REDIRECTING = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX", "GIT_COMMON_DIR")
# sha, abbreviated sha, author name, author time, subject: one NUL after each field.
_FIELDS = 5
_FORMAT = "--format=tformat:%H%x00%h%x00%an%x00%at%x00%s"
_NOT_STATE = ":(top,exclude,glob)**/.tiers/**"  # tiers' state directories, at any depth


@dataclass(frozen=True)
class Commit:
    """One commit as a user sees it in ``git log``; ``when`` is its author date, in UTC."""

    sha: str
    short: str
    subject: str
    author: str
    when: datetime


class Repo:
    """A git work tree, found from a path inside it; ``root`` is its top directory.

    Methods taking a ``commit`` (or ``since``/``until``) accept anything git resolves
    to a commit: a branch, a tag, a full or abbreviated sha, ``HEAD~2``.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"Repo({str(self.root)!r})"

    @classmethod
    def find(cls, start: Path) -> Repo:
        """The repository whose work tree holds ``start`` (a file or a directory)."""
        start = start.absolute()
        where = start if start.is_dir() else start.parent
        if not where.is_dir():
            raise UsageError(f"{start} does not exist; give a path inside a git repository")
        out = _git("rev-parse", "--show-toplevel", cwd=where).stdout.strip()
        return cls(Path(out))

    def resolve(self, ref: str) -> str:
        """The full 40-hex sha of the commit ``ref`` names."""
        return self._rev_parse(ref)

    def short(self, commit: str) -> str:
        """The commit's abbreviated sha: 7 hex digits, more if 7 are ambiguous."""
        return self._rev_parse(commit, "--short=7")

    def export(self, commit: str, dest: Path) -> Path:
        """Write exactly the tree of ``commit`` to the directory ``dest``; returns ``dest``.

        Only what is committed is written: never a change in the work tree nor an
        untracked file. It is built next to ``dest`` and renamed into place, so ``dest``
        is either absent or complete; a ``dest`` that exists is returned untouched
        (releases are keyed by commit and never change), and of two processes exporting
        at once, one rename wins and the other discards its copy. Like ``git archive``,
        it honours ``export-ignore`` and ``export-subst`` in the commit's .gitattributes
        and leaves submodules empty.
        """
        sha = self.resolve(commit)
        if dest.exists():
            return dest
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent.absolute()))
        except OSError as exc:
            raise UsageError(f"cannot write {dest}: {exc.strerror or exc}") from None
        try:
            archive = stage / "tree.tar"
            tree = stage / "tree"
            _git("archive", "--format=tar", f"--output={archive}", sha, cwd=self.root)
            self._extract(archive, tree, sha)
            try:
                tree.rename(dest)
            except OSError as exc:
                if not dest.is_dir():  # not another process's rename that won the race
                    raise OperationError(
                        f"cannot move the export of {sha} into {dest}: {exc.strerror or exc}"
                    ) from None
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        return dest

    def show(self, commit: str, path: Path) -> str | None:
        """The text of ``path`` (absolute, inside the work tree) as ``commit`` has it;
        None when that commit has no such file."""
        inside = path.absolute().relative_to(self.root).as_posix()
        done = self._git("cat-file", "blob", f"{self.resolve(commit)}:{inside}", ok=(0, 128))
        return done.stdout if done.returncode == 0 else None

    def dirty(self) -> list[str]:
        """Paths with uncommitted changes, untracked files included; [] when clean.

        tiers' own state (a ``.tiers/`` directory, beside any tiers.toml) never counts,
        ignored by .gitignore or not.
        """
        out = self._git(
            "status", "--porcelain=v1", "-z", "--untracked-files=normal", "--", ":(top)", _NOT_STATE
        ).stdout
        paths: list[str] = []
        entries = iter(out.split("\0"))
        for entry in entries:
            if not entry:
                continue
            paths.append(entry[3:])
            if entry[0] in "RC":  # a rename or copy is followed by the path it came from
                next(entries, None)
        return paths

    def branch(self) -> str | None:
        """The checked-out branch's name, or None when HEAD is detached."""
        done = self._git("symbolic-ref", "--quiet", "--short", "HEAD", ok=(0, 1))
        return (done.stdout.strip() or None) if done.returncode == 0 else None

    def commit_info(self, commit: str) -> Commit:
        """Who made ``commit``, when, and its subject line."""
        return self._commits("-n1", self.resolve(commit))[0]

    def log(self, since: str | None, until: str) -> list[Commit]:
        """Commits reachable from ``until`` but not from ``since``, newest first.

        With ``since`` None, all of ``until``'s history.
        """
        return self._commits(self._range(since, until))

    def changed_paths(self, since: str | None, until: str) -> list[str]:
        """Files that differ between the two commits (every file of ``until`` if no since).

        A renamed file is listed under both its old and its new path.
        """
        head = self.resolve(until)
        if since is None:
            args = ["ls-tree", "-r", "-z", "--name-only", head]
        else:
            args = ["diff", "--name-only", "-z", "--no-renames", self.resolve(since), head, "--"]
        return [path for path in self._git(*args).stdout.split("\0") if path]

    def tags(self, pattern: str = "*") -> list[str]:
        """Tag names matching the glob ``pattern``, newest first by creation date."""
        out = self._git(
            "tag", "--list", "--sort=-version:refname", "--sort=-creatordate", "--", pattern
        ).stdout
        return out.split()

    def is_ancestor(self, older: str, newer: str) -> bool:
        """True when ``older`` is in ``newer``'s history (a commit is its own ancestor)."""
        first, second = self.resolve(older), self.resolve(newer)
        done = self._git("merge-base", "--is-ancestor", first, second, ok=(0, 1))
        return done.returncode == 0

    # -- what releases change -----------------------------------------------------------

    def ref(self, name: str) -> str | None:
        """The commit a full ref (``refs/heads/x``, ``refs/tags/v``) names, or None."""
        done = self._git("rev-parse", "--verify", "--quiet", f"{name}^{{commit}}", ok=(0, 1))
        return done.stdout.strip() or None

    def upstream(self, branch: str) -> str | None:
        """The remote-tracking branch ``branch`` follows (``origin/main``), or None."""
        done = self._git(
            "rev-parse", "--abbrev-ref", "--symbolic-full-name", f"{branch}@{{upstream}}",
            ok=(0, 128),
        )  # fmt: skip
        return done.stdout.strip() or None if done.returncode == 0 else None

    def fetch(self, remote: str) -> None:
        self._git("fetch", "--quiet", "--tags", remote)

    def count(self, since: str, until: str) -> int:
        """How many commits ``until`` has that ``since`` lacks."""
        return int(self._git("rev-list", "--count", f"{since}..{until}").stdout.strip())

    def create_tag(self, name: str, commit: str, message: str) -> None:
        self._git("tag", "--annotate", "--message", message, name, commit)

    def delete_tag(self, name: str) -> None:
        self._git("tag", "--delete", name)

    def move_branch(self, name: str, commit: str, old: str | None) -> None:
        """Point branch ``name`` at ``commit``, only if it still points at ``old``."""
        self._git("update-ref", f"refs/heads/{name}", commit, old or "0" * 40)

    def push(self, remote: str, refs: list[str]) -> None:
        """Push ``refs`` to ``remote`` all or nothing (``--atomic``)."""
        self._git("push", "--atomic", "--quiet", remote, *refs)

    def _git(self, *args: str, ok: Collection[int] = (0,)) -> subprocess.CompletedProcess[str]:
        return _git(*args, cwd=self.root, ok=ok)

    def _rev_parse(self, ref: str, *options: str) -> str:
        if not ref or ref.startswith("-") or "\n" in ref:
            raise UsageError(self._no_commit(ref))
        done = self._git("rev-parse", "--verify", *options, f"{ref}^{{commit}}", ok=(0, 128))
        if done.returncode == 0:
            return done.stdout.strip()
        if "is ambiguous" in done.stderr:
            raise UsageError(
                f"{ref} is ambiguous in {self.root}: several objects start with it; "
                "give more characters of the sha"
            )
        raise UsageError(self._no_commit(ref))

    def _no_commit(self, ref: str) -> str:
        names = self._git("for-each-ref", "--format=%(refname:short)", "refs/heads").stdout
        branches = names.split()
        if not branches:
            return f"no commit {ref} in {self.root} (no branches yet); commit something first"
        shown = ", ".join(branches[:_BRANCHES_SHOWN])
        if len(branches) > _BRANCHES_SHOWN:
            shown += f", ... ({len(branches) - _BRANCHES_SHOWN} more)"
        return (
            f"no commit {ref} in {self.root} (branches: {shown}); "
            "name a branch, tag or commit that exists there"
        )

    def _range(self, since: str | None, until: str) -> str:
        head = self.resolve(until)
        return head if since is None else f"{self.resolve(since)}..{head}"

    def _commits(self, *revs: str) -> list[Commit]:
        out = self._git("log", "--no-show-signature", "--abbrev=7", "-z", _FORMAT, *revs, "--")
        fields = out.stdout.split("\0")
        if fields and not fields[-1]:
            fields.pop()
        commits: list[Commit] = []
        for at in range(0, len(fields) - _FIELDS + 1, _FIELDS):
            sha, short, author, when, subject = fields[at : at + _FIELDS]
            stamp = datetime.fromtimestamp(int(when), UTC)
            commits.append(Commit(sha, short, subject, author, stamp))
        return commits

    def _extract(self, archive: Path, tree: Path, sha: str) -> None:
        try:
            tree.mkdir()
            with tarfile.open(archive) as tar:
                tar.extractall(tree, filter="data")
        except tarfile.FilterError as exc:
            raise UsageError(
                f"cannot export {sha[:12]} from {self.root}: {exc}; "
                "a release may only hold files and links inside the repository"
            ) from None
        except (OSError, tarfile.TarError) as exc:
            what = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise OperationError(f"cannot export {sha[:12]} to {tree.parent}: {what}") from None


def user_email(cwd: Path) -> str | None:
    """The ``user.email`` git would sign a commit made in ``cwd`` with; None if unset or no git."""
    try:
        done = _git("config", "--get", "user.email", cwd=cwd, ok=(0, 1))
    except UsageError:
        return None
    return done.stdout.strip() or None


def _git(*args: str, cwd: Path, ok: Collection[int] = (0,)) -> subprocess.CompletedProcess[str]:
    """Run ``git ARGS`` in ``cwd``; an exit code outside ``ok`` raises the matching error.

    Problems with the repository itself (none there, owned by someone else, a .git
    directory rather than a work tree) always raise, whatever ``ok`` allows.
    """
    binary = shutil.which("git")
    if binary is None:
        raise UsageError(_MISSING)
    env = {name: value for name, value in os.environ.items() if name not in _REDIRECTING}
    env |= {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    argv = [binary, "-c", "color.ui=false", *args]
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="surrogateescape",
            check=False,
        )
    except FileNotFoundError:
        if not cwd.is_dir():
            raise UsageError(f"{cwd} does not exist; give a path inside a git repository") from None
        raise UsageError(_MISSING) from None
    except OSError as exc:
        raise OperationError(f"cannot run {binary}: {exc.strerror or exc}") from None
    if done.returncode == 0:
        return done
    problem = _repository_problem(done.stderr, cwd)
    if problem is not None:
        raise UsageError(problem)
    if done.returncode not in ok:
        said = "\n".join(line for line in done.stderr.splitlines() if line.strip())
        raise OperationError(
            f"`git {' '.join(args)}` failed in {cwd} (exit {done.returncode})"
            + (f":\n{said}" if said else "")
        )
    return done


def _repository_problem(stderr: str, cwd: Path) -> str | None:
    if "not a git repository" in stderr:
        return (
            f"{cwd} is not inside a git repository; "
            "run `git init` there, or use a tiers.toml that is"
        )
    if "dubious ownership" in stderr:
        quoted = re.search(r"repository at '([^']*)'", stderr)
        where = quoted.group(1) if quoted else str(cwd)
        return (
            f"git refuses the repository at {where}: it is owned by another user; trust it "
            f"with `git config --global --add safe.directory {where}`"
        )
    if "must be run in a work tree" in stderr:
        return (
            f"{cwd} is a git directory, not a work tree; "
            "use a directory of a checkout (where tiers.toml is)"
        )
    return None


def tracked(cwd: Path, *patterns: str) -> list[str]:
    """Files git tracks under ``cwd`` matching ``patterns`` (relative paths); none outside git."""
    try:
        done = _git("ls-files", "-z", "--", *patterns, cwd=cwd)
    except UsageError:
        return []
    return [name for name in done.stdout.split("\0") if name]
