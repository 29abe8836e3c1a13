"""tiers.git against real repositories made in tmp_path, with no git config of the machine."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tiers.errors import OperationError, UsageError
from tiers.git import Commit, Repo, _git

T0 = 1_700_000_000  # 2023-11-14 22:13:20 UTC


@pytest.fixture(autouse=True)
def hermetic_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No global or system git config, no hook's GIT_DIR, and nothing above tmp_path."""
    config = tmp_path / "gitconfig"
    config.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX", "GIT_COMMON_DIR"):
        monkeypatch.delenv(name, raising=False)
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Ada Lovelace")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "ada@example.com")


def git(cwd: Path, *args: str, at: int = T0) -> str:
    date = f"@{at} +0000"
    env = {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def commit(cwd: Path, message: str, at: int = T0, **files: str) -> str:
    """Write ``files`` (name with __ for /) and commit everything; returns the sha."""
    for name, body in files.items():
        path = cwd / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "--allow-empty", "-m", message, at=at)
    return git(cwd, "rev-parse", "HEAD")


@pytest.fixture
def work(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    return root


@pytest.fixture
def history(work: Path) -> list[str]:
    """Three commits on main: app.py, then README + src/lib.py, then a change to app.py."""
    return [
        commit(work, "Start the app", T0, **{"app.py": "v1\n"}),
        commit(work, "Add a library", T0 + 60, **{"README": "hi\n", "src__lib.py": "lib\n"}),
        commit(work, "Fix the login page", T0 + 120, **{"app.py": "v2\n"}),
    ]


def test_find_from_a_subdirectory_or_a_file(work: Path, history: list[str]) -> None:
    assert Repo.find(work / "src").root == work.resolve()
    assert Repo.find(work / "src" / "lib.py").root == work.resolve()
    assert Repo.find(work / "tiers.toml").root == work.resolve()  # need not exist yet


def test_find_outside_a_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(UsageError) as caught:
        Repo.find(plain / "tiers.toml")
    assert str(caught.value) == (
        f"{plain} is not inside a git repository; run `git init` there, or use a tiers.toml that is"
    )
    assert caught.value.exit_code == 2


def test_find_inside_the_git_directory(work: Path, history: list[str]) -> None:
    with pytest.raises(UsageError, match="is a git directory, not a work tree"):
        Repo.find(work / ".git")


def test_resolve_a_branch_a_tag_and_a_short_sha(work: Path, history: list[str]) -> None:
    repo = Repo.find(work)
    git(work, "tag", "-a", "v1", "-m", "first", history[0])
    git(work, "tag", "light", history[1])
    assert repo.resolve("main") == history[2]
    assert repo.resolve("HEAD~2") == history[0]
    assert repo.resolve("v1") == history[0]  # the commit, not the annotated tag object
    assert repo.resolve("light") == history[1]
    assert repo.resolve(history[1][:8]) == history[1]
    short = repo.short("main")
    assert 7 <= len(short) <= 12
    assert history[2].startswith(short)


def test_an_unknown_ref_lists_the_branches(work: Path, history: list[str]) -> None:
    git(work, "branch", "feature")
    repo = Repo.find(work)
    for bad in ("nope", "-x", ""):
        with pytest.raises(UsageError) as caught:
            repo.resolve(bad)
        assert str(caught.value) == (
            f"no commit {bad} in {repo.root} (branches: feature, main); "
            "name a branch, tag or commit that exists there"
        )
    with pytest.raises(UsageError, match="no commit nope in"):
        repo.short("nope")


def test_many_branches_are_cut_short(work: Path, history: list[str]) -> None:
    for n in range(12):
        git(work, "branch", f"b{n:02}")
    with pytest.raises(UsageError) as caught:
        Repo.find(work).resolve("nope")
    assert "(branches: b00, b01, b02, b03, b04, b05, b06, b07, b08, b09, ... (3 more))" in str(
        caught.value
    )


def test_a_repository_with_no_commit(work: Path) -> None:
    with pytest.raises(UsageError, match=r"no commit HEAD in .* \(no branches yet\); commit"):
        Repo.find(work).resolve("HEAD")


def test_export_writes_the_committed_tree_only(
    work: Path, history: list[str], tmp_path: Path
) -> None:
    (work / "run.sh").write_text("#!/bin/sh\n")
    (work / "run.sh").chmod(0o755)
    (work / "link").symlink_to("README")
    sha = commit(work, "Add a script", T0 + 180)
    (work / "app.py").write_text("uncommitted\n")  # changed in the work tree
    (work / "staged.txt").write_text("staged\n")
    git(work, "add", "staged.txt")  # in the index, not committed
    (work / "untracked.txt").write_text("untracked\n")
    dest = tmp_path / "releases" / sha

    assert Repo.find(work).export("main", dest) == dest

    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*")) == [
        "README", "app.py", "link", "run.sh", "src", "src/lib.py",
    ]  # fmt: skip
    assert (dest / "app.py").read_text() == "v2\n"
    assert os.access(dest / "run.sh", os.X_OK)
    assert (dest / "link").readlink() == Path("README")
    assert [p.name for p in dest.parent.iterdir()] == [sha]  # no staging directory left behind


def test_export_is_idempotent_and_keyed_by_commit(
    work: Path, history: list[str], tmp_path: Path
) -> None:
    repo = Repo.find(work)
    first, last = tmp_path / "r" / history[0], tmp_path / "r" / history[2]
    assert repo.export(history[0], first) == first
    assert repo.export(history[2], last) == last
    (first / "app.py").write_text("touched\n")

    assert repo.export(history[0], first) == first  # already there: left as it is

    assert (first / "app.py").read_text() == "touched\n"
    assert sorted(p.name for p in first.iterdir()) == ["app.py"]
    assert (last / "app.py").read_text() == "v2\n"
    assert (last / "src" / "lib.py").read_text() == "lib\n"
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == sorted([history[0], history[2]])


def test_export_that_loses_a_race_keeps_the_winners_copy(
    work: Path, history: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Repo.find(work)
    dest = tmp_path / "r" / history[2]
    extract = Repo._extract  # noqa: SLF001 - another exporter wins the race inside export
    calls: list[Path] = []

    def other_process_finishes_first(self: Repo, archive: Path, tree: Path, sha: str) -> None:
        extract(self, archive, tree, sha)
        calls.append(tree)
        if len(calls) == 1:  # another exporter completes while this one is still staging
            assert repo.export(sha, dest) == dest
            (dest / "winner").write_text("")

    monkeypatch.setattr(Repo, "_extract", other_process_finishes_first)

    assert repo.export(history[2], dest) == dest

    assert len(calls) == 2
    assert sorted(p.name for p in dest.iterdir()) == ["README", "app.py", "src", "winner"]
    assert [p.name for p in dest.parent.iterdir()] == [history[2]]


def test_export_refuses_a_link_out_of_the_tree(work: Path, tmp_path: Path) -> None:
    (work / "passwd").symlink_to("/etc/passwd")
    sha = commit(work, "Link out")
    with pytest.raises(UsageError, match="a release may only hold files and links inside"):
        Repo.find(work).export(sha, tmp_path / "r" / sha)
    assert not (tmp_path / "r" / sha).exists()
    assert list((tmp_path / "r").iterdir()) == []


def test_dirty_lists_changes_and_untracked_files(work: Path, history: list[str]) -> None:
    repo = Repo.find(work)
    assert repo.dirty() == []
    (work / "app.py").write_text("changed\n")
    (work / "new.txt").write_text("new\n")
    (work / "notes").mkdir()
    (work / "notes" / "a.md").write_text("a\n")
    git(work, "mv", "README", "README.md")
    assert sorted(repo.dirty()) == ["README.md", "app.py", "new.txt", "notes/"]


def test_tiers_own_state_is_never_a_change(work: Path, history: list[str]) -> None:
    repo = Repo.find(work)
    for state in (work / ".tiers", work / "deploy" / ".tiers"):
        state.mkdir(parents=True)
        (state / "state.db").write_text("")
    assert repo.dirty() == []
    assert Repo.find(work / "deploy").dirty() == []
    (work / "deploy" / "tiers.toml").write_text("")
    assert repo.dirty() == ["deploy/"]


def test_branch_is_none_on_a_detached_head(work: Path, history: list[str]) -> None:
    repo = Repo.find(work)
    assert repo.branch() == "main"
    git(work, "checkout", "-q", "--detach", history[1])
    assert repo.branch() is None


def test_commit_info(work: Path, history: list[str]) -> None:
    info = Repo.find(work).commit_info("main")
    assert info == Commit(
        sha=history[2],
        short=info.short,
        subject="Fix the login page",
        author="Ada Lovelace",
        when=datetime.fromtimestamp(T0 + 120, UTC),
    )
    assert history[2].startswith(info.short)
    assert 7 <= len(info.short) <= 12


def test_log_and_changed_paths_between_commits(work: Path, history: list[str]) -> None:
    repo = Repo.find(work)
    assert [c.subject for c in repo.log(history[0], "main")] == [
        "Fix the login page",
        "Add a library",
    ]
    assert [c.sha for c in repo.log(None, "main")] == history[::-1]
    assert repo.log("main", history[0]) == []
    assert repo.changed_paths(history[0], history[2]) == ["README", "app.py", "src/lib.py"]
    assert repo.changed_paths(history[1], history[2]) == ["app.py"]
    assert repo.changed_paths(None, history[1]) == ["README", "app.py", "src/lib.py"]
    git(work, "mv", "app.py", "main.py")
    moved = commit(work, "Rename", T0 + 180)
    assert repo.changed_paths(history[2], moved) == ["app.py", "main.py"]


def test_tags_newest_first(work: Path, history: list[str]) -> None:
    git(work, "tag", "-a", "v1.9", "-m", "x", history[0], at=T0 + 1000)
    git(work, "tag", "-a", "v1.10", "-m", "x", history[1], at=T0 + 1000)  # same second
    git(work, "tag", "-a", "v0.1", "-m", "x", history[2], at=T0 + 2000)  # newest, lowest
    git(work, "tag", "deploy-1", history[0])  # lightweight: the commit's date
    repo = Repo.find(work)
    assert repo.tags("v*") == ["v0.1", "v1.10", "v1.9"]
    assert repo.tags() == ["v0.1", "v1.10", "v1.9", "deploy-1"]
    assert repo.tags("nothing*") == []


def test_is_ancestor(work: Path, history: list[str]) -> None:
    repo = Repo.find(work)
    assert repo.is_ancestor(history[0], "main")
    assert repo.is_ancestor("main", "main")
    assert not repo.is_ancestor("main", history[0])
    with pytest.raises(UsageError, match="no commit nope"):
        repo.is_ancestor("nope", "main")


def test_a_hooks_git_dir_does_not_redirect(
    work: Path, history: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q", "-b", "other")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    assert Repo.find(work).resolve("main") == history[2]


def test_a_failing_git_command_is_an_operation_error(work: Path) -> None:
    with pytest.raises(OperationError) as caught:
        _git("frobnicate", cwd=work)
    assert str(caught.value).startswith(f"`git frobnicate` failed in {work} (exit 1):\n")
    assert "'frobnicate' is not a git command" in str(caught.value)
    assert caught.value.exit_code == 1


def test_git_missing_from_path(
    work: Path, history: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Repo.find(work)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    for call in (lambda: Repo.find(work), lambda: repo.resolve("main"), repo.dirty):
        with pytest.raises(UsageError) as caught:
            call()
        assert str(caught.value) == "git not found on PATH; install it: apt-get install git"
