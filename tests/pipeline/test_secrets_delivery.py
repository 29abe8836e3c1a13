"""Each tier's secrets reach its processes, and only them: deploy, up, apply, rollback.

The example's staging and production each get a random OAUTH_ENCRYPTION_KEY of their own
(``example_copy``: keys of the copy's own, never the user's); staging is deployed for
real and its processes' environments are read from /proc.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomlkit

from tests.conftest import tiers
from tests.pipeline.example import example_copy, git, port
from tests.pipeline.test_commit import Probe
from tiers.secrets import Store, entries, values

pytest.importorskip("fastapi", reason="the example's dependencies are not installed")

NAME = "OAUTH_ENCRYPTION_KEY"


@pytest.fixture
def repo() -> Iterator[Path]:
    """The copy, its release command also writing what it was given outside .tiers/."""
    with example_copy("secrets", ("staging", "production")) as project:
        config = project / "tiers.toml"
        doc = tomlkit.parse(config.read_text())
        seen = project.parent / "release-saw"
        backend = doc["services"]["backend"]  # type: ignore[index]
        said = f"printenv {NAME} > {seen}; printenv SHELL_ONLY >> {seen}; "
        backend["release_command"] = said + str(backend["release_command"])  # type: ignore[index]
        config.write_text(tomlkit.dumps(doc))
        git(project, "commit", "-q", "-am", "the release command says what it saw")
        yield project


def app_environ(repo: Path) -> dict[str, str]:
    """The environment of staging's running backend app (its server, below the shell)."""
    status = tiers("status", "--json", cwd=repo)
    assert status.returncode in (0, 1), status.stderr
    staging = next(e for e in json.loads(status.stdout) if e["environment"] == "staging")
    shell = next(
        p["pid"]
        for p in staging["processes"]
        if p["name"].startswith("staging.backend.app@") and p["state"] == "running"
    )
    children = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
    pid = int(children[0]) if children else shell
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = [item.partition(b"=") for item in raw.split(b"\0") if item]
    return {k.decode(): v.decode() for k, _, v in pairs} | {"__PID__": str(pid)}


def history(repo: Path) -> list[dict[str, Any]]:
    done = tiers("history", "staging", "--json", cwd=repo)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def plaintext_under_tiers(repo: Path, value: str) -> list[str]:
    found = []
    for path in (repo / ".tiers").rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if value.encode() in path.read_bytes():
                    found.append(str(path.relative_to(repo)))
            except OSError:
                continue
    return found


def test_every_process_of_a_tier_gets_its_own_secrets_and_none_from_the_shell(
    repo: Path,
) -> None:
    staging, production = values(repo, "staging")[NAME], values(repo, "production")[NAME]
    assert staging != production
    done = tiers("deploy", "staging", cwd=repo, env={"SHELL_ONLY": "from the shell"})
    assert done.returncode == 0, done.stderr
    environ = app_environ(repo)
    assert environ[NAME] == staging
    assert production not in environ.values()
    assert "SHELL_ONLY" not in environ
    saw = (repo.parent / "release-saw").read_text()
    assert saw == f"{staging}\n"  # the release command: the secret, and nothing of the shell
    assert plaintext_under_tiers(repo, staging) == []
    run = history(repo)[0]
    secrets = next(s for s in run["steps"] if s["name"] == "secrets")
    fingerprint = next(e.fingerprint for e in entries(repo, "staging") if e.name == NAME)
    assert secrets["detail"] == f"{NAME} {fingerprint}"


def test_a_deploy_refuses_a_declared_secret_without_a_value_before_anything_starts(
    repo: Path,
) -> None:
    Store(repo).remove("staging", NAME)
    done = tiers("deploy", "staging", cwd=repo)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"error: staging: the secret {NAME} (backend needs it) has no value in staging; "
        f"set it with `tiers secrets set staging {NAME}`"
    )
    assert history(repo) == []
    assert not (repo.parent / "release-saw").exists()


def test_a_dry_run_warns_of_a_declared_secret_without_a_value_and_still_plans(
    repo: Path, tmp_path: Path
) -> None:
    Store(repo).remove("staging", NAME)
    home = tmp_path / "stranger"  # names are read without a key: anyone can plan
    done = tiers(
        "deploy",
        "staging",
        "--dry-run",
        cwd=repo,
        env={"XDG_CONFIG_HOME": str(home), "SOPS_AGE_KEY_FILE": "", "HOME": str(home)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        f"warning: staging: the secret {NAME} (backend needs it) has no value in staging; "
        f"set it with `tiers secrets set staging {NAME}`; a deploy refuses until then"
    ]
    assert f"{NAME} from secrets/staging.yaml" in done.stdout  # the plan, in full
    assert history(repo) == []
    Store(repo).set("staging", {NAME: "back-0123456789abcdef"})
    quiet = tiers("deploy", "staging", "--dry-run", cwd=repo)
    assert (quiet.returncode, quiet.stderr) == (0, "")


def test_a_deploy_by_someone_who_cannot_read_the_tier_says_so(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "stranger"
    done = tiers(
        "deploy",
        "staging",
        cwd=repo,
        env={"XDG_CONFIG_HOME": str(home), "SOPS_AGE_KEY_FILE": "", "HOME": str(home)},
    )
    assert done.returncode == 2
    assert "no identity here can read" in done.stderr
    assert "staging" in done.stderr
    assert history(repo) == []


def test_up_after_down_reads_the_store_again_and_refuses_a_missing_secret(repo: Path) -> None:
    assert tiers("deploy", "staging", cwd=repo).returncode == 0
    assert tiers("down", cwd=repo).returncode == 0
    done = tiers("up", "staging", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert app_environ(repo)[NAME] == values(repo, "staging")[NAME]
    assert tiers("down", cwd=repo).returncode == 0
    Store(repo).remove("staging", NAME)
    done = tiers("up", "staging", cwd=repo)
    assert done.returncode == 1
    assert f"error: staging: the secret {NAME} (backend needs it) has no value" in done.stderr
    assert os.environ.get(NAME) is None


def test_apply_restarts_the_release_with_the_new_value_and_records_which_changed(
    repo: Path,
) -> None:
    assert tiers("deploy", "staging", cwd=repo).returncode == 0
    same = tiers("secrets", "apply", "staging", cwd=repo)
    assert same.returncode == 0, same.stderr
    assert same.stdout == f"staging: no secret changed since deployment 1 ({NAME})\n"
    Store(repo).set("staging", {NAME: "rotated-0123456789abcdef"})
    commit = git(repo, "rev-parse", "HEAD")
    with Probe(f"http://localhost:{port(repo, 8002)}") as probe:
        applied = tiers("secrets", "apply", "staging", cwd=repo)
    assert applied.returncode == 0, applied.stderr
    assert probe.sent > 10
    assert probe.failures == []  # the new values came in with no request failing
    short = git(repo, "rev-parse", "--short", "HEAD")
    assert applied.stdout.splitlines()[-1] == (
        f"staging: {short} ({commit[:12]}) serves with the secrets as they are now; deployment 2"
    )
    assert app_environ(repo)[NAME] == "rotated-0123456789abcdef"
    run = history(repo)[0]
    assert (run["commit"], run["state"]) == (commit, "succeeded")
    fingerprint = next(e.fingerprint for e in entries(repo, "staging") if e.name == NAME)
    secrets = next(s for s in run["steps"] if s["name"] == "secrets")
    assert secrets["detail"] == f"secrets changed: {NAME} {fingerprint}"
    shown = tiers("history", "staging", cwd=repo).stdout
    assert "secrets   ok" in shown and f"secrets changed: {NAME} {fingerprint}" in shown
    assert "rotated-0123456789abcdef" not in shown + applied.stdout + applied.stderr
    assert plaintext_under_tiers(repo, "rotated-0123456789abcdef") == []


def test_a_rollback_keeps_todays_secrets_and_says_so(repo: Path) -> None:
    assert tiers("deploy", "staging", cwd=repo).returncode == 0
    (repo / "README.md").write_text("a second release\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a second release")
    assert tiers("deploy", "staging", cwd=repo).returncode == 0
    Store(repo).set("staging", {NAME: "rotated-after-release"})
    back = tiers("rollback", "staging", cwd=repo)
    assert back.returncode == 0, back.stderr
    assert app_environ(repo)[NAME] == "rotated-after-release"
    run = history(repo)[0]
    secrets = next(s for s in run["steps"] if s["name"] == "secrets")
    assert secrets["detail"].endswith(" (today's values, not those it ran with)")
    assert "today's values, not those it ran with" in back.stdout + back.stderr


def test_a_crashed_app_is_restarted_with_its_secrets(repo: Path) -> None:
    assert tiers("deploy", "staging", cwd=repo).returncode == 0
    before = app_environ(repo)
    os.kill(int(before["__PID__"]), signal.SIGKILL)
    deadline = time.monotonic() + 30
    after = before
    while after["__PID__"] == before["__PID__"]:
        assert time.monotonic() < deadline, "the supervisor did not restart the app"
        time.sleep(0.2)
        with contextlib.suppress(StopIteration, OSError):  # between two lives
            after = app_environ(repo)
    assert after[NAME] == values(repo, "staging")[NAME]
