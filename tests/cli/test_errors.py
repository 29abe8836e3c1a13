"""What a user sees when something is wrong: one located line, the right exit code, no
traceback, and nothing written or created on the way."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import tiers

HEAD = '[project]\nname = "x"\n[environments.dev]\ntrigger = "local"\n'


def config(tmp_path: Path, body: str = "") -> Path:
    path = tmp_path / "tiers.toml"
    path.write_text(HEAD + body)
    return path


def listing(directory: Path) -> dict[str, tuple[int, float]]:
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime)
        for p in sorted(directory.rglob("*"))
    }


# -- locations print as written --------------------------------------------------------


def test_line_100_prints_as_digits_not_an_emoji(tmp_path: Path) -> None:
    config(tmp_path, "\n" * 95 + "namespace = 1\n")
    result = tiers("check")
    assert result.returncode == 2
    assert result.stderr == (
        "error: tiers.toml:100:1 environments.dev.namespace: "
        "expected a string (in quotes), not a number\n"
    )


def test_an_emoji_code_in_a_key_stays_text_in_text_and_json(tmp_path: Path) -> None:
    config(tmp_path, '":x:" = 1\n')
    result = tiers("check", "--json")
    assert result.returncode == 2
    assert "❌" not in result.stdout + result.stderr
    problem = json.loads(result.stdout)["error"]["problems"][0]
    assert problem["key"] == 'environments.dev.":x:"'
    assert problem["message"].startswith("unknown key ':x:'")
    assert (problem["line"], problem["column"]) == (5, 1)


# -- the reproducers: each one exact ------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[costs]\na = nan\n", "tiers.toml:6:1 costs.a: expected a finite number, not nan or inf"),
        ("[costs]\na = inf\n", "tiers.toml:6:1 costs.a: expected a finite number, not nan or inf"),
        (
            "[costs]\na = [0, inf]\n",
            "tiers.toml:6:9 costs.a[1]: expected a finite number, not nan or inf",
        ),
        ('[costs]\na = [1, "x"]\n', "tiers.toml:6:9 costs.a[1]: expected a number, not a string"),
        (
            '[costs]\na = "cheap"\n',
            "tiers.toml:6:1 costs.a: a cost is a number of US dollars a month, a range "
            '[low, high] or { usd = N, note = ".." }',
        ),
        (
            "[costs]\na = 1e300\n",
            "tiers.toml:6:1 costs.a: a cost is at most 1,000,000,000 US dollars a month",
        ),
        (
            'cookie_auth = "yes"\n',
            "tiers.toml:5:1 environments.dev.cookie_auth: expected true or false, not a string",
        ),
        (
            "description = 2024-01-01\n",
            "tiers.toml:5:1 environments.dev.description: "
            "expected a string (in quotes), not a date",
        ),
        (
            "namespace = 07:32:00\n",
            "tiers.toml:5:1 environments.dev.namespace: expected a string (in quotes), not a time",
        ),
        (
            'database = { provider = "neon", name = "x", url = "postgresql://[" }\n',
            "tiers.toml:5:45 environments.dev.database.url: 'postgresql://[' is not a valid URL "
            "(Invalid IPv6 URL); like postgresql://USER@HOST:5432/NAME or sqlite:///PATH",
        ),
        (
            'database = { provider = "neon", name = "x", url = "postgresql://u:pw@[h" }\n',
            "tiers.toml:5:45 environments.dev.database.url: 'postgresql://u:***@[h' is not a "
            "valid URL (Invalid IPv6 URL); like postgresql://USER@HOST:5432/NAME or "
            "sqlite:///PATH",
        ),
        (
            'redis = { provider = "local", url = "redis://h:99999" }\n',
            "tiers.toml:5:31 environments.dev.redis.url: 'redis://h:99999' is not a valid URL "
            "(Port out of range 0-65535); like redis://HOST:6379",
        ),
        (
            '[services.api]\nvars = { dev = "X" }\n',
            "tiers.toml:6:10 services.api.vars.dev: unknown fact 'dev'; known: database_url, "
            "redis_url, frontend_url, api_url, namespace, oauth_client_id, oauth_redirect_uri, "
            "observability_environment, bucket_ROLE",
        ),
        (
            "[services.api]\nhealth_timeout = inf\n",
            "tiers.toml:6:1 services.api.health_timeout: expected a finite number, not nan or inf",
        ),
    ],
)
def test_bad_values_read_as_tiers_messages(tmp_path: Path, body: str, expected: str) -> None:
    config(tmp_path, body)
    for command in (["check"], ["docs"], ["ls", "--json"]):
        result = tiers(*command)
        assert (result.returncode, result.stderr) == (2, f"error: {expected}\n"), command
        assert "Traceback" not in result.stdout


def test_check_json_gives_a_json_consumer_the_error(tmp_path: Path) -> None:
    config(tmp_path, "cookie_auth = 1\n")
    result = tiers("check", "--format", "json")
    assert result.returncode == 2
    assert json.loads(result.stdout) == {
        "error": {
            "message": "tiers.toml:5:1 environments.dev.cookie_auth: "
            "expected true or false, not a number",
            "exit_code": 2,
            "problems": [
                {
                    "file": "tiers.toml",
                    "line": 5,
                    "column": 1,
                    "key": "environments.dev.cookie_auth",
                    "message": "expected true or false, not a number",
                }
            ],
        }
    }


def test_an_operation_error_is_json_too(tmp_path: Path) -> None:
    config(tmp_path)
    result = tiers("history", "nope", "--json")
    assert result.returncode == 2
    assert json.loads(result.stdout)["error"]["message"] == "no environment 'nope' in tiers.toml"


# -- tiers docs --check and -o -------------------------------------------------------------


def test_docs_check_on_a_missing_file_is_bad_input(tmp_path: Path) -> None:
    config(tmp_path)
    result = tiers("docs", "--check", "environments.md")
    assert result.returncode == 2
    assert result.stderr == (
        "error: environments.md does not exist; write it with `tiers docs -o environments.md`\n"
    )


def test_docs_check_refuses_a_directory_and_a_fifo(tmp_path: Path) -> None:
    config(tmp_path)
    (tmp_path / "adir").mkdir()
    os.mkfifo(tmp_path / "pipe")
    for name in ("adir", "pipe"):
        result = tiers("docs", "--check", name)
        assert result.returncode == 2
        assert result.stderr == f"error: {name} is not a regular file; pass the document's path\n"


def test_output_into_a_missing_folder_is_refused_not_created(tmp_path: Path) -> None:
    config(tmp_path)
    before = listing(tmp_path)
    for command in (["docs", "-o", "new/env.md"], ["init", "-c", "new/tiers.toml"]):
        result = tiers(*command)
        assert result.returncode == 2
        path = command[-1]
        assert result.stderr == (
            f"error: cannot write {path}: the folder new does not exist; create it first\n"
        )
    assert listing(tmp_path) == before


@pytest.mark.parametrize("command", ["docs -o", "init -c"])
def test_a_file_name_too_long_is_one_line(tmp_path: Path, command: str) -> None:
    config(tmp_path)
    long = "a" * 300 + ".md"
    result = tiers(*command.split(), long)
    assert result.returncode == 2
    assert result.stderr.endswith(f"{long}: file name too long\n")
    assert result.stderr.count("\n") == 1


def test_check_with_a_config_name_too_long_is_one_line(tmp_path: Path) -> None:
    result = tiers("check", "-c", "a" * 300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_writing_through_a_symlink_keeps_the_link_and_the_mode(tmp_path: Path) -> None:
    config(tmp_path)
    (tmp_path / "docs").mkdir()
    real = tmp_path / "docs" / "environments.md"
    real.write_text("old\n")
    real.chmod(0o640)
    (tmp_path / "environments.md").symlink_to("docs/environments.md")
    assert tiers("docs", "-o", "environments.md").returncode == 0
    assert (tmp_path / "environments.md").is_symlink()
    assert real.read_text().startswith("<!-- generated by tiers docs")
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


def test_a_new_file_gets_the_umask_mode_not_0600(tmp_path: Path) -> None:
    config(tmp_path)
    result = subprocess.run(
        ["sh", "-c", f"umask 022 && exec {sys.executable} -m tiers docs -o environments.md"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((tmp_path / "environments.md").stat().st_mode) == 0o644


# -- reading commands create nothing ------------------------------------------------------


def test_history_and_diff_do_not_create_the_state_store(tmp_path: Path) -> None:
    config(tmp_path, '[environments.staging]\ntrigger = "manual"\n')
    assert tiers("history", "dev").stdout == "dev: no deployment yet\n"
    result = tiers("diff", "dev", "staging")
    assert result.returncode == 0
    assert "dev has no successful deployment yet" in result.stdout
    assert not (tmp_path / ".tiers").exists()


# -- a fault in tiers itself ---------------------------------------------------------------

_FAULTY = """
import sys
from tiers.cli import app, main

@app.command()
def boom() -> None:
    raise RecursionError("maximum recursion depth exceeded\\nwhile calling a Python object")

sys.argv = ["tiers", "boom"]
main()
"""


def test_an_unexpected_error_is_one_line_and_the_traceback_needs_tiers_debug() -> None:
    run = [sys.executable, "-c", _FAULTY]
    result = subprocess.run(run, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert result.stderr == (
        "error: tiers failed unexpectedly: RecursionError: maximum recursion depth exceeded "
        "while calling a Python object\n"
        "error: run it again with TIERS_DEBUG=1 to see the traceback, and report it\n"
    )
    env = {**os.environ, "TIERS_DEBUG": "1"}
    debug = subprocess.run(run, capture_output=True, text=True, check=False, env=env)
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
