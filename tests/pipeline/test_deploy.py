"""`tiers deploy` and `tiers rollback` on the example, in a real git repository, for real.

The example's staging runs on free ports of its own here (``port(repo, 8002)`` for its
8002), so these tests run beside each other and every other; production and development
are left out of the copy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import tiers
from tests.pipeline.example import example_copy, git, port

pytest.importorskip("fastapi", reason="the example's dependencies are not installed")


@pytest.fixture
def repo() -> Iterator[Path]:
    with example_copy("deploy", ("staging",)) as project:
        yield project


def commit(repo: Path, message: str, files: dict[str, str]) -> str:
    for name, body in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def api(repo: Path) -> str:
    return f"http://localhost:{port(repo, 8002)}"


def health(repo: Path) -> dict[str, Any]:
    with urllib.request.urlopen(f"{api(repo)}/health", timeout=5) as answer:
        return dict(json.loads(answer.read()))


def hold_lock(repo: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holding staging's deploy lock (as ci@runner pid 7) for a while."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from tiers.state import StateStore\n"
            "with StateStore.open(None, Path('.')) as s, s.lock('staging', 'ci@runner pid 7'):\n"
            f"    print('held', flush=True); time.sleep({seconds})",
        ],
        cwd=repo,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def deploy_until(repo: Path, step: str) -> subprocess.Popen[str]:
    """`tiers deploy staging` running, returned as soon as it begins ``step``."""
    deploy = subprocess.Popen(
        [sys.executable, "-m", "tiers", "deploy", "staging"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert deploy.stdout is not None
    for line in deploy.stdout:
        if f"staging {step} ..." in line:
            break
    return deploy


def history(repo: Path) -> list[dict[str, Any]]:
    result = tiers("history", "staging", "--json", cwd=repo)
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def psql(repo: Path, sql: str) -> str:
    env = {"PGHOST": "127.0.0.1", "PGPORT": str(port(repo, 5434)), "PGUSER": "postgres"}
    done = subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-d", "plyr-stg", "-c", sql],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


MIGRATION_0004 = '''"""add plays to tracks"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None
DROPS_COLUMNS = ["tracks.plays"]


def upgrade() -> None:
    with op.batch_alter_table("tracks") as batch:
        batch.add_column(sa.Column("plays", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("tracks") as batch:
        batch.drop_column("plays")
'''

FAILING_0004 = '''"""a migration that changes the schema outside its transaction, then fails"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("CREATE TABLE half_done (id integer)")
    raise RuntimeError("the data backfill found a bad row")


def downgrade() -> None:
    op.execute("DROP TABLE half_done")
'''

VERSIONS = "backend/alembic/versions"


def upload(repo: Path, title: str) -> None:
    import httpx

    from tests.examples.test_plyr_app import wav_bytes

    answer = httpx.post(
        f"{api(repo)}/tracks",
        data={"title": title},
        files={"audio": ("a.wav", wav_bytes(0.5), "audio/wav")},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text


def test_deploys_the_commit_and_records_every_step(repo: Path) -> None:
    plan = tiers("deploy", "staging", "--dry-run", cwd=repo)
    assert plan.returncode == 0, plan.stderr
    first = git(repo, "rev-parse", "HEAD")
    assert f"deploy staging: main → {first[:12]}" in plan.stdout
    assert f"  snapshot  postgresql://postgres@127.0.0.1:{port(repo, 5434)}/plyr-stg" in plan.stdout
    assert history(repo) == []  # a dry run records nothing

    (repo / "backend/src/plyr_backend/uncommitted.py").write_text("never shipped\n")
    done = tiers("deploy", "staging", cwd=repo)
    assert done.returncode == 0, done.stderr
    answer = health(repo)
    assert (answer["environment"], answer["commit"], answer["migration_head"]) == (
        "staging",
        first,
        "0003",
    )
    release = repo / ".tiers/releases" / first / "backend/src/plyr_backend"
    assert (release / "main.py").exists()
    assert not (release / "uncommitted.py").exists()  # from git, never the work tree

    second = commit(repo, "plays", {f"{VERSIONS}/0004_add_plays.py": MIGRATION_0004})
    again = tiers("deploy", "staging", cwd=repo)
    assert again.returncode == 0, again.stderr
    assert "reused backend-" in again.stdout  # the lock file did not change
    answer = health(repo)
    assert (answer["commit"], answer["migration_head"]) == (second, "0004")
    runs = history(repo)
    assert [(r["commit"], r["state"]) for r in runs] == [
        (second, "succeeded"),
        (first, "succeeded"),
    ]
    assert (runs[0]["migration_before"], runs[0]["migration_after"]) == ("0003", "0004")
    steps = [s["name"] for s in runs[0]["steps"]]
    assert steps == [
        "build",
        "secrets",
        "snapshot",
        "release",
        "start",
        "health",
        "switch",
        "drain",
    ]
    assert all(s["outcome"] == "ok" and s["duration_ms"] >= 0 for s in runs[0]["steps"])
    manifest = runs[0]["manifest"]
    assert manifest["commit"] == second
    assert manifest["bindings"]["backend"]["url"] == api(repo)
    status = json.loads(tiers("status", "--json", cwd=repo).stdout)
    processes = {p["name"] for env in status for p in env["processes"]}
    second_id = runs[0]["id"]
    assert processes == {f"staging.backend.app@{second_id}", f"staging.backend.worker@{second_id}"}
    logs = tiers("logs", "staging", "backend.app", "-n", "200", cwd=repo)
    assert logs.returncode == 0, logs.stderr
    assert "backend.app | " in logs.stdout and "Application startup complete" in logs.stdout
    first_id = runs[1]["id"]
    older = tiers("logs", "staging", f"backend.app@{first_id}", cwd=repo)
    assert older.returncode == 0, older.stderr
    assert f"backend.app@{first_id} | " in older.stdout


def test_a_failed_release_command_keeps_the_old_version_and_restores_the_database(
    repo: Path,
) -> None:
    assert tiers("deploy", "staging", cwd=repo).returncode == 0
    upload(repo, "kept")
    before = health(repo)
    commit(repo, "bad migration", {f"{VERSIONS}/0004_half_done.py": FAILING_0004})
    failed = tiers("deploy", "staging", cwd=repo)
    assert failed.returncode == 1
    assert "its release command failed; nothing was switched" in failed.stderr
    assert "the database was restored from its snapshot" in failed.stderr
    assert "RuntimeError: the data backfill found a bad row" in failed.stderr
    assert health(repo)["commit"] == before["commit"]  # the old version still serves
    assert psql(repo, "SELECT to_regclass('half_done') IS NULL") == "t"
    assert psql(repo, "SELECT title FROM tracks") == "kept"
    assert psql(repo, "SELECT version_num FROM alembic_version") == "0003"
    last = history(repo)[0]
    assert last["state"] == "failed"
    assert [s["name"] for s in last["steps"] if s["outcome"] == "failed"] == ["release"]


def test_an_unhealthy_version_is_stopped_and_its_migration_undone(repo: Path) -> None:
    assert tiers("deploy", "staging", cwd=repo).returncode == 0
    before = health(repo)
    main = (repo / "backend/src/plyr_backend/main.py").read_text()
    commit(
        repo,
        "broken app with a migration",
        {
            f"{VERSIONS}/0004_add_plays.py": MIGRATION_0004,
            "backend/src/plyr_backend/main.py": main + "\nraise SystemExit('no such setting')\n",
        },
    )
    failed = tiers("deploy", "staging", cwd=repo)
    assert failed.returncode == 1
    assert "the new version did not become healthy" in failed.stderr
    assert "exited with code" in failed.stderr and "no such setting" in failed.stderr
    assert health(repo)["commit"] == before["commit"]
    assert psql(repo, "SELECT version_num FROM alembic_version") == "0003"
    assert (
        psql(repo, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'plays'")
        == "0"
    )
    status = json.loads(tiers("status", "--json", cwd=repo).stdout)
    names = {p["name"] for env in status for p in env["processes"]}
    first = history(repo)[1]["id"]
    assert names == {f"staging.backend.app@{first}", f"staging.backend.worker@{first}"}


def test_a_second_deploy_is_refused_while_one_holds_the_lock(repo: Path) -> None:
    holder = hold_lock(repo, seconds=60)
    try:
        refused = tiers("deploy", "staging", cwd=repo)
        assert refused.returncode == 1
        assert "staging is being deployed by ci@runner pid 7 since" in refused.stderr
        assert "--wait" in refused.stderr
        assert history(repo) == []
    finally:
        holder.kill()
        holder.communicate()


SLOW_0004 = """\"\"\"a migration that takes its time while {hold} exists (30 s at most)\"\"\"

import time
from pathlib import Path

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    deadline = time.monotonic() + 30
    while Path("{hold}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def downgrade() -> None:
    pass
"""


@pytest.mark.parametrize("step", ["release", "health", "drain"])
def test_a_deploy_killed_mid_step_is_reported_and_repaired(repo: Path, step: str) -> None:
    assert tiers("deploy", "staging", cwd=repo).returncode == 0
    first = health(repo)["commit"]
    main = (repo / "backend/src/plyr_backend/main.py").read_text()
    hold = repo.parent / "hold-the-migration"  # the slow migration waits while it exists
    hold.touch()
    slow = {
        "release": {f"{VERSIONS}/0004_slow.py": SLOW_0004.format(hold=hold)},
        "health": {
            "backend/src/plyr_backend/main.py": "import time\ntime.sleep(30)\n" + main,
            f"{VERSIONS}/0004_add_plays.py": MIGRATION_0004,
        },
        "drain": {"backend/src/plyr_backend/main.py": main + "\n# a code-only change\n"},
    }[step]
    second = commit(repo, f"slow {step}", slow)
    deploy = deploy_until(repo, step)  # kill it as the step begins
    deploy.send_signal(signal.SIGKILL)
    deploy.communicate()
    hold.unlink()  # the repairing deploy runs the same migration, without the wait
    assert health(repo)["commit"] in (first, second)  # never nothing: old or new serves
    assert history(repo)[0]["state"] == "interrupted"
    shown = tiers("history", "staging", cwd=repo)
    assert "interrupted (tiers was stopped" in shown.stdout
    assert "interrupted" in tiers("status", cwd=repo).stdout

    third = commit(repo, "fixed", {"backend/src/plyr_backend/main.py": main + "\n# fixed\n"})
    repaired = tiers("deploy", "staging", cwd=repo)
    assert repaired.returncode == 0, repaired.stderr
    assert f"was interrupted during {step}" in repaired.stdout
    if step == "health":  # killed after its migration, before its switch
        assert "its migration was undone from the snapshot" in repaired.stdout
    assert health(repo)["commit"] == third
    runs = history(repo)
    assert [r["state"] for r in runs] == ["succeeded", "interrupted", "succeeded"]
    status = json.loads(tiers("status", "--json", cwd=repo).stdout)
    names = {p["name"] for env in status for p in env["processes"]}
    live = runs[0]["id"]
    assert names == {f"staging.backend.app@{live}", f"staging.backend.worker@{live}"}


def test_up_deploys_what_the_trigger_follows_once(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    first = tiers("up", cwd=repo)
    assert first.returncode == 0, first.stderr
    urls = f"{api(repo)}  http://localhost:{port(repo, 5174)}"
    assert f"staging: up, deployed {head[:7]} (main)  {urls}" in first.stdout
    assert health(repo)["commit"] == head
    again = tiers("up", cwd=repo)
    assert again.returncode == 0, again.stderr
    assert f"staging: up, serving {head[:7]}" in again.stdout
    assert len(history(repo)) == 1


def test_a_queued_deploy_waits_for_the_one_before(repo: Path) -> None:
    holder = hold_lock(repo, seconds=120)
    queued = subprocess.Popen(
        [sys.executable, "-m", "tiers", "deploy", "staging", "--wait"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert queued.stdout is not None
    try:
        for line in queued.stdout:
            if "staging: waiting for ci@runner pid 7 since" in line:
                break
        else:
            pytest.fail("the queued deploy never said it was waiting")
    finally:
        holder.send_signal(signal.SIGINT)  # Ctrl-C: it leaves its `with` block, unlocking
        holder.communicate()
    rest = queued.communicate()[0]
    assert queued.returncode == 0, rest
    assert [r["state"] for r in history(repo)] == ["succeeded"]


def test_rollback_serves_the_previous_release_and_guards_its_data(repo: Path) -> None:
    assert tiers("deploy", "staging", cwd=repo).returncode == 0
    first = health(repo)["commit"]
    commit(repo, "plays", {f"{VERSIONS}/0004_add_plays.py": MIGRATION_0004})
    assert tiers("deploy", "staging", cwd=repo).returncode == 0
    upload(repo, "has plays")
    refused = tiers("rollback", "staging", "--db", "downgrade", cwd=repo)
    assert refused.returncode == 1
    assert "downgrading to 0003 would drop tracks.plays (1 rows with values, revision 0004)" in (
        refused.stderr
    )
    assert health(repo)["migration_head"] == "0004"

    done = tiers("rollback", "staging", "--db", "downgrade", "--force", cwd=repo)
    assert done.returncode == 0, done.stderr
    answer = health(repo)
    assert (answer["commit"], answer["migration_head"]) == (first, "0003")
    assert psql(repo, "SELECT title FROM tracks") == "has plays"  # the rows stay
    runs = history(repo)
    assert [(r["kind"], r["state"]) for r in runs] == [
        ("rollback", "succeeded"),
        ("deploy", "rolled-back"),
        ("deploy", "succeeded"),
    ]
    nothing = tiers("rollback", "staging", "--to", "no-such-version", cwd=repo)
    assert nothing.returncode == 2
    assert "staging never ran 'no-such-version' successfully" in nothing.stderr


def test_rollback_can_restore_the_snapshot_when_told_to(repo: Path) -> None:
    assert tiers("deploy", "staging", cwd=repo).returncode == 0
    first = health(repo)["commit"]
    commit(repo, "plays", {f"{VERSIONS}/0004_add_plays.py": MIGRATION_0004})
    assert tiers("deploy", "staging", cwd=repo).returncode == 0
    upload(repo, "written after the deploy")
    refused = tiers("rollback", "staging", "--db", "restore", cwd=repo)
    assert refused.returncode == 1
    assert "discards every write to the database since; pass --force" in refused.stderr
    assert psql(repo, "SELECT count(*) FROM tracks") == "1"
    done = tiers("rollback", "staging", "--db", "restore", "--force", cwd=repo)
    assert done.returncode == 0, done.stderr
    answer = health(repo)
    assert (answer["commit"], answer["migration_head"]) == (first, "0003")
    assert psql(repo, "SELECT count(*) FROM tracks") == "0"


def test_sigterm_ends_a_deploy_cleanly_and_records_it(repo: Path) -> None:
    assert tiers("deploy", "staging", cwd=repo).returncode == 0
    first = health(repo)["commit"]
    main = (repo / "backend/src/plyr_backend/main.py").read_text()
    commit(
        repo,
        "slow, with a migration",
        {
            "backend/src/plyr_backend/main.py": "import time\ntime.sleep(30)\n" + main,
            f"{VERSIONS}/0004_add_plays.py": MIGRATION_0004,
        },
    )
    deploy = deploy_until(repo, "health")
    deploy.send_signal(signal.SIGTERM)
    deploy.communicate(timeout=60)
    assert deploy.returncode != 0
    assert health(repo)["commit"] == first
    last = history(repo)[0]
    assert (last["state"], last["error"]) == (
        "interrupted",
        "stopped by a signal (Ctrl-C or SIGTERM)",
    )
    assert psql(repo, "SELECT version_num FROM alembic_version") == "0003"
    status = json.loads(tiers("status", "--json", cwd=repo).stdout)
    names = {p["name"] for env in status for p in env["processes"]}
    assert names == {
        f"staging.backend.app@{history(repo)[1]['id']}",
        f"staging.backend.worker@{history(repo)[1]['id']}",
    }


def test_a_team_state_store_on_postgresql_records_the_deploy(repo: Path, postgres_url: str) -> None:
    done = tiers("deploy", "staging", cwd=repo, env={"TIERS_STATE_URL": postgres_url})
    assert done.returncode == 0, done.stderr
    assert not (repo / ".tiers/state.db").exists()  # the team's store, not a local file
    shown = tiers("history", "staging", "--json", "--state", postgres_url, cwd=repo)
    (run,) = json.loads(shown.stdout)
    assert (run["state"], run["commit"]) == ("succeeded", health(repo)["commit"])


def test_a_failed_build_is_recorded_and_changes_nothing(repo: Path) -> None:
    assert tiers("deploy", "staging", cwd=repo).returncode == 0
    before = health(repo)["commit"]
    lock = (repo / "backend/requirements.lock").read_text()
    commit(repo, "a typo", {"backend/requirements.lock": lock + "no-such-package-tiers==0.0.1\n"})
    failed = tiers("deploy", "staging", cwd=repo)
    assert failed.returncode == 1
    assert "backend: build: `python -m pip install --requirement requirements.lock` failed" in (
        failed.stderr
    )
    assert health(repo)["commit"] == before
    last = history(repo)[0]
    assert last["state"] == "failed"
    assert [s["name"] for s in last["steps"] if s["outcome"] == "failed"] == ["build"]


def test_up_keeps_a_deployed_release_whose_worker_once_crashed(repo: Path) -> None:
    assert tiers("deploy", "staging", cwd=repo).returncode == 0
    deployed = health(repo)["commit"]
    status = json.loads(tiers("status", "--json", cwd=repo).stdout)
    (worker,) = [p for e in status for p in e["processes"] if ".worker@" in p["name"]]
    children = Path(f"/proc/{worker['pid']}/task/{worker['pid']}/children").read_text().split()
    for child in children:  # the worker itself dies; the supervisor restarts it
        os.kill(int(child), signal.SIGKILL)
    again = tiers("up", "staging", cwd=repo)
    assert again.returncode == 0, again.stderr
    assert f"staging: up, serving {deployed[:7]}" in again.stdout
    assert health(repo)["commit"] == deployed


def test_a_tier_on_sqlite_deploys_and_snapshots_its_file(repo: Path) -> None:
    config = (repo / "tiers.toml").read_text()
    sqlite = config.replace(
        'database = { provider = "local", engine = "postgresql", name = "plyr-stg", '
        f'url = "postgresql://postgres@127.0.0.1:{port(repo, 5434)}/plyr-stg" }}',
        'database = { provider = "local", engine = "sqlite", name = "plyr-stg", '
        'url = "sqlite:///plyr-stg.sqlite3" }',
    )
    assert sqlite != config
    commit(repo, "staging on SQLite", {"tiers.toml": sqlite})
    done = tiers("deploy", "staging", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert health(repo)["migration_head"] == "0003"
    state = repo / ".tiers/local/environments/staging"
    assert (state / "databases/plyr-stg.sqlite3").stat().st_size > 0
    snapshots = repo / ".tiers/snapshots/staging"
    assert [p.name for p in snapshots.iterdir()] == [f"{history(repo)[0]['id']}.dump"]


def test_a_local_tier_once_frozen_at_a_release_runs_its_work_tree_again() -> None:
    with example_copy("frozen", ("development",)) as project:
        config = (project / "tiers.toml").read_text()
        following = config.replace('trigger = "local"', 'trigger = { push = "main" }')
        head = commit(project, "development follows main", {"tiers.toml": following})
        forced = ("--force", "--reason", "an old tiers froze it so")  # it declares no secrets
        assert tiers("deploy", "development", *forced, cwd=project).returncode == 0
        url = f"http://localhost:{port(project, 8001)}/health"
        with urllib.request.urlopen(url, timeout=5) as answer:
            assert json.loads(answer.read())["commit"] == head
        (project / "tiers.toml").write_text(config)  # a local tier again

        up = tiers("up", "development", cwd=project)
        assert up.returncode == 0, up.stderr
        assert "development: up, from the work tree" in up.stdout
        with urllib.request.urlopen(url, timeout=5) as answer:
            assert json.loads(answer.read())["commit"] == "work-tree"
        status = json.loads(tiers("status", "--json", cwd=project).stdout)
        names = {p["name"] for env in status for p in env["processes"]}
        assert names == {"development.backend.app", "development.backend.worker"}
