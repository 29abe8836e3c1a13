"""The canary: a secret set to a unique string appears in no output of any command, in no
file under .tiers/, in no process's arguments and in no record, even when a release
command prints it and fails."""

from __future__ import annotations

import subprocess
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


@pytest.fixture
def repo() -> Iterator[Path]:
    with example_copy("canary", ("staging", "production")) as project:
        Store(project).set("staging", {NAME: CANARY})
        git(project, "commit", "-q", "-am", "staging's key is the canary")
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
    outputs: dict[str, subprocess.CompletedProcess[str]] = {}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = tiers(*args, cwd=repo)
        outputs[" ".join(args)] = done
        return done

    run("deploy", "staging", "--dry-run")
    assert run("deploy", "staging").returncode == 0, outputs["deploy staging"].stderr
    assert arguments_with_the_canary() == []
    for command in (
        ["status", "--json"],
        ["history", "staging", "--json"],
        ["logs", "staging", "-n", "200"],
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

    config.write_text(text)
    git(repo, "commit", "-q", "-am", "the release command again")
    assert run("deploy", "staging").returncode == 0
    run("rollback", "staging", "--dry-run")
    assert run("rollback", "staging").returncode == 0
    run("history", "staging", "--json")

    leaks = [c for c, done in outputs.items() if CANARY in done.stdout + done.stderr]
    assert leaks == []
    assert everything_under(repo / ".tiers") == []
    assert arguments_with_the_canary() == []
