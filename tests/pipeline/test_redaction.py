"""The canary: a secret set to a unique string appears in no output of any command, in no
file under .tiers/, in no process's arguments and in no record, even when a release
command prints it and fails, in staging's deploy and in production's release.

Staging's key is the canary and production's the canary with a suffix, so a leak of
either is found by looking for the one string."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import tiers
from tests.pipeline.example import example_copy, git
from tiers.secrets import Store

pytest.importorskip("fastapi", reason="the example's dependencies are not installed")

NAME = "OAUTH_ENCRYPTION_KEY"
CANARY = f"canary-{uuid.uuid4().hex}"
SEES = f"""
import hashlib, os, pathlib
value = os.environ["{NAME}"].encode()
def holds(cmdline):
    try:
        return value in cmdline.read_bytes()
    except OSError:
        return False
leaks = [str(c) for c in pathlib.Path("/proc").glob("[0-9]*/cmdline") if holds(c)]
print(hashlib.sha256(value).hexdigest(), leaks)
"""
"""What `tiers secrets run` runs: the digest of the value it was given (never the value),
and every process whose arguments hold that value while it runs (tiers' own included)."""


@pytest.fixture
def repo() -> Iterator[Path]:
    with example_copy("canary", ("staging", "production")) as project:
        Store(project).set("staging", {NAME: CANARY})
        Store(project).set("production", {NAME: f"{CANARY}-production"})
        git(project, "commit", "-q", "-am", "each tier's key is a canary")
        remote = project.parent / "remote.git"  # `tiers release` pushes its tag
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
        git(project, "remote", "add", "origin", str(remote))
        git(project, "push", "-q", "-u", "origin", "main")
        yield project


def everything_under(directory: Path) -> list[str]:
    return [
        str(path)
        for path in directory.rglob("*")
        if path.is_file() and not path.is_symlink() and CANARY.encode() in path.read_bytes()
    ]


def arguments_with_the_canary() -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if CANARY.encode() in cmdline.read_bytes():
                found.append(str(cmdline))
        except OSError:
            continue
    return found


def test_the_canary_is_never_shown_written_or_passed_in_argv(repo: Path) -> None:
    outputs: list[tuple[str, subprocess.CompletedProcess[str]]] = []  # each run, repeats too

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = tiers(*args, cwd=repo)
        outputs.append((" ".join(args), done))
        return done

    def succeeds(*args: str) -> None:
        done = run(*args)
        assert done.returncode == 0, done.stderr

    run("deploy", "staging", "--dry-run")
    succeeds("deploy", "staging")
    assert arguments_with_the_canary() == []
    run("release", "--dry-run")
    succeeds("release")
    for command in (
        ["status", "--json"],
        ["history", "staging", "--json"],
        ["history", "production", "--json"],
        ["logs", "staging", "-n", "200"],
        ["logs", "production", "-n", "200"],
        ["diff", "staging", "production", "--json"],
        ["check", "--json"],
        ["docs"],
        ["secrets", "ls", "staging", "--json"],
        ["secrets", "diff", "staging", "production", "--json"],
        ["--help"],
        ["deploy", "--help"],
        ["history", "nowhere", "--json"],  # an error, as JSON
    ):
        run(*command)

    config = repo / "tiers.toml"
    text = config.read_text()
    release = 'release_command = "python -m alembic upgrade head"'
    assert release in text
    leaky = f'release_command = "echo the key is ${NAME}; exit 3"'
    config.write_text(text.replace(release, leaky))
    git(repo, "commit", "-q", "-am", "a release command that prints the key and fails")
    failed = run("deploy", "staging")
    assert failed.returncode == 1
    assert "the key is ***" in failed.stderr  # the command's output, the value masked

    # production's release command prints its key and fails, in `tiers release`
    only_there = f"test $TIERS_ENVIRONMENT = staging || {{ echo the key is ${NAME}; exit 3; }}; "
    config.write_text(text.replace(release, release.replace('= "', f'= "{only_there}')))
    with (repo / "backend/src/plyr_backend/__init__.py").open("a") as changed:
        changed.write("# released again\n")  # a change to release
    git(repo, "commit", "-q", "-am", "production's release command prints the key and fails")
    git(repo, "push", "-q", "origin", "main")
    succeeds("deploy", "staging")
    failed_release = run("release")
    assert failed_release.returncode == 1
    assert "the key is ***" in failed_release.stderr
    run("history", "production", "--json")
    run("logs", "production", "-n", "200")

    config.write_text(text)
    git(repo, "commit", "-q", "-am", "the release command again")
    succeeds("deploy", "staging")
    run("rollback", "staging", "--dry-run")
    succeeds("rollback", "staging")
    run("history", "staging", "--json")

    leaks = [c for c, done in outputs if CANARY in done.stdout + done.stderr]
    assert leaks == []
    assert everything_under(repo / ".tiers") == []
    assert arguments_with_the_canary() == []


def test_secrets_run_hands_the_command_the_value_and_nothing_else_holds_it(repo: Path) -> None:
    """The command tiers runs gets the value in its environment; no process's arguments
    (tiers' own included) hold it while it runs, and tiers itself says nothing of it."""
    ran = tiers("secrets", "run", "staging", "--", sys.executable, "-c", SEES, cwd=repo)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == f"{hashlib.sha256(CANARY.encode()).hexdigest()} []\n"
    failing = tiers("secrets", "run", "staging", "--", "sh", "-c", "exit 3", cwd=repo)
    assert failing.returncode == 3
    missing = tiers("secrets", "run", "production", "--", "no-such-command", cwd=repo)
    assert (missing.returncode, missing.stderr) == (
        2,
        "error: no-such-command: command not found\n",
    )
    helped = tiers("secrets", "run", "--help", cwd=repo)
    said = [done.stdout + done.stderr for done in (ran, failing, missing, helped)]
    assert [text for text in said if CANARY in text] == []
    assert everything_under(repo / ".tiers") == []
