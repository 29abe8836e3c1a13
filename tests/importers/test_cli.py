"""`tiers import fly` as a user runs it: files written or not, exit codes, messages."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

from tests.conftest import tiers
from tiers.checks import run
from tiers.config import load

FIXTURES = Path(__file__).parent / "fixtures"
SEED = ("fly.staging.toml", "fly.toml")
SECRETS = ("--secret", "DATABASE_URL", "--secret", "OAUTH_ENCRYPTION_KEY")
URLS = ("--url", "staging=https://api-stg.plyr.fm", "--url", "production=https://api.plyr.fm")


@pytest.fixture(autouse=True)
def seed(tmp_path: Path) -> None:
    """The seed's two fly.toml files in the working directory."""
    for name in SEED:
        shutil.copy(FIXTURES / name, tmp_path / name)


def test_the_seed_imports_and_only_staging_protection_is_left_to_declare() -> None:
    result = tiers("import", "fly", *SEED, *SECRETS, *URLS)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "wrote tiers.toml: staging, production\n"
    loaded = load("tiers.toml")
    findings = run(loaded.config, loaded.source)
    assert [(f.rule, f.severity) for f in findings] == [("staging-unprotected", "warning")]
    assert tiers("check", "--fail-on", "error").returncode == 0


def test_the_user_is_told_what_was_assumed_left_out_and_left_to_do() -> None:
    result = tiers("import", "fly", *SEED, *SECRETS)
    lines = result.stderr.splitlines()
    assert "could not map: fly.staging.toml [mounts] source, destination" in lines
    assert "assumed: staging deploys on a push to main" in lines
    assert "assumed: production deploys when a GitHub release is published" in lines
    assert any("staging-unprotected" in line for line in lines)
    assert not any("secrets-undeclared" in line for line in lines)


def test_without_secrets_a_todo_is_written_and_check_asks_for_them() -> None:
    result = tiers("import", "fly", *SEED)
    assert result.returncode == 0
    assert any("secrets-undeclared" in line for line in result.stderr.splitlines())
    text = Path("tiers.toml").read_text()
    todo = '# secrets = ["DATABASE_URL"]  # TODO: the names `fly secrets list -a relay-api` shows'
    assert todo in text
    loaded = load("tiers.toml")
    rules = sorted({f.rule for f in run(loaded.config, loaded.source)})
    assert rules == ["secrets-undeclared", "staging-unprotected"]


def test_dry_run_prints_the_file_and_writes_nothing() -> None:
    result = tiers("import", "fly", *SEED, *SECRETS, "--dry-run")
    assert result.returncode == 0
    assert not Path("tiers.toml").exists()
    assert result.stdout.startswith("# tiers.toml written by `tiers import fly` from:\n")
    assert tomllib.loads(result.stdout)["project"]["name"] == "relay-api"
    assert "could not map: fly.staging.toml [mounts] source, destination" in result.stderr


def test_an_existing_file_is_kept_without_force() -> None:
    Path("tiers.toml").write_text("# mine\n")
    result = tiers("import", "fly", *SEED, *SECRETS)
    assert result.returncode == 2
    assert result.stderr == "error: tiers.toml already exists; pass --force to overwrite it\n"
    assert Path("tiers.toml").read_text() == "# mine\n"
    assert tiers("import", "fly", *SEED, *SECRETS, "--force").returncode == 0
    assert load("tiers.toml").config.project.name == "relay-api"


def test_config_option_chooses_where_to_write() -> None:
    assert tiers("import", "fly", *SEED, *SECRETS, "-c", "deploy/tiers.toml").returncode == 0
    assert load("deploy/tiers.toml").config.order == ["staging", "production"]
    assert not Path("tiers.toml").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'app = "relay-api"\nprimary_region = \n',
            "error: fly.toml:2:18 invalid TOML: Invalid value",
        ),
        (
            'app = "relay-api"\n[env\n',
            "error: fly.toml:2:5 invalid TOML: Expected ']' at the end of a table declaration",
        ),
    ],
)
def test_a_malformed_file_exits_2_naming_line_and_column(text: str, message: str) -> None:
    Path("fly.toml").write_text(text)
    result = tiers("import", "fly", *SEED)
    assert result.returncode == 2
    assert result.stderr == message + "\n"
    assert not Path("tiers.toml").exists()


def test_a_missing_file_exits_2_naming_it() -> None:
    result = tiers("import", "fly", "fly.staging.toml", "fly.prod.toml")
    assert result.returncode == 2
    assert result.stderr == "error: fly.prod.toml: no such file\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--env", "production"), "fly.staging.toml and fly.toml both deploy production"),
        (("--env", "a", "--env", "b", "--env", "c"), "3 --env for 2 files"),
        (("--env", "Staging"), "--env Staging: use lower-case letters"),
        (
            ("--secret", "database-url"),
            "--secret database-url: 'database-url' is not an environment",
        ),
        (
            ("--url", "qa=https://qa.plyr.fm"),
            "--url qa=https://qa.plyr.fm: no environment qa; imported: staging, production",
        ),
        (("--url", "staging"), "--url staging: write ENV=URL"),
        (("--url", "staging=api-stg.plyr.fm"), "'api-stg.plyr.fm' is not an http(s) URL"),
        (("--service", "database"), "--service database: that is an environment key"),
    ],
)
def test_unusable_options_exit_2(args: tuple[str, ...], message: str) -> None:
    result = tiers("import", "fly", *SEED, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert not Path("tiers.toml").exists()
