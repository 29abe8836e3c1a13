"""The secret rules that read the store: needed values set, none shared, none naming another
tier's resource, none readable by another tier's key where tiers.toml says so, none in a
tracked dotenv file or written in tiers.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Edit
from tests.secrets.helpers import new_key, ok, own_home, tiers
from tiers.checks import Finding, run
from tiers.checks.secretfiles import needed
from tiers.config import load
from tiers.config.load import load_text
from tiers.secrets import Store

__all__ = ["own_home"]  # each test has a home (and so a keys.txt) of its own

NEEDED = [
    "DATABASE_URL",
    "OAUTH_ENCRYPTION_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "LOGFIRE_WRITE_TOKEN",
]
IGNORED = ["platform-not-installed", "access-not-enforced"]


def stock(config: Path) -> None:
    """Give every deployed tier a secrets file holding each secret it needs, its own values."""
    store = Store(config.parent)
    for env in load(config).config.environments.values():
        if not env.local:
            store.init(env.name)
            store.set(env.name, {name: f"{env.name}-{name}-v" for name in needed(env)})


def findings(config: Path, *rules: str) -> list[Finding]:
    return [f for f in run(*load(config), ignore=IGNORED) if f.rule in rules]


def messages(config: Path, *rules: str) -> list[str]:
    return [f.message for f in findings(config, *rules)]


def fill(store: Store, environment: str, **values: str) -> None:
    """Every secret the seed's tier needs, each a value of this tier's own, then ``values``."""
    store.init(environment)
    store.set(environment, {name: f"{environment}-{name}-value" for name in NEEDED} | values)


def test_a_needed_secret_with_no_store_names_the_commands_that_set_it(plyr: Path) -> None:
    (first, *rest) = findings(plyr, "secret-missing")
    assert first.message == (
        "staging needs DATABASE_URL but secrets/staging.yaml does not exist: run "
        "`tiers secrets init staging`, then `tiers secrets set staging DATABASE_URL`"
    )
    assert first.key == "environments.staging.backend.secrets[0]"
    assert first.severity == "error"
    assert "tiers secrets generate ENV NAME" in first.hint
    assert {(f.environments, f.message.split()[2]) for f in [first, *rest]} == {
        ((env,), name) for env in ("staging", "production") for name in NEEDED
    }


def test_the_seed_with_its_secrets_set_is_clean(plyr: Path) -> None:
    stock(plyr)
    assert run(*load(plyr), ignore=IGNORED) == []


def test_a_tiers_toml_that_is_no_file_has_no_store_to_judge(plyr: Path) -> None:
    """As deploy checks the text a commit carries: the store rules claim nothing."""
    loaded = load_text(plyr.read_text(), "2026.1201.0900:tiers.toml")
    assert [f for f in run(loaded.config, loaded.source) if f.rule.startswith("secret-")] == []


def test_a_needed_secret_missing_from_the_tiers_file_is_named(plyr: Path) -> None:
    store = Store(plyr.parent)
    fill(store, "staging")
    store.remove("staging", "LOGFIRE_WRITE_TOKEN")
    fill(store, "production")
    assert messages(plyr, "secret-missing") == [
        "staging needs LOGFIRE_WRITE_TOKEN but secrets/staging.yaml has no value for it: run "
        "`tiers secrets set staging LOGFIRE_WRITE_TOKEN`"
    ]


def test_the_same_value_in_two_tiers_fails_until_each_has_its_own(plyr: Path) -> None:
    store = Store(plyr.parent)
    fill(store, "staging", SECRET_KEY="one-key-for-both")
    fill(store, "production", SECRET_KEY="one-key-for-both")
    (finding,) = findings(plyr, "secret-reused", "secret-missing")
    assert finding.message == (
        "staging's SECRET_KEY and production's SECRET_KEY hold the same value"
    )
    assert finding.environments == ("staging", "production")
    assert "tiers secrets generate --all NAME" in finding.hint
    store.generate(["staging", "production"], "SECRET_KEY", lambda: new_key()[0])
    assert findings(plyr, "secret-reused", "secret-missing") == []


def test_a_value_shared_under_two_names_is_found_too(plyr: Path) -> None:
    store = Store(plyr.parent)
    fill(store, "staging", DOCKET_TOKEN="same")
    fill(store, "production", WORKER_TOKEN="same")
    assert messages(plyr, "secret-reused") == [
        "staging's DOCKET_TOKEN and production's WORKER_TOKEN hold the same value"
    ]


PRODUCTION_DB = "postgresql://plyr:pw@ep-quiet.eu-central-1.aws.neon.tech/plyr-prd?sslmode=require"


def test_a_connection_string_naming_another_tiers_database_is_an_error(plyr: Path) -> None:
    store = Store(plyr.parent)
    fill(store, "staging", DATABASE_URL=PRODUCTION_DB)
    fill(store, "production", DATABASE_URL=PRODUCTION_DB.replace(":pw@", ":other@"))
    (finding,) = findings(plyr, "secret-names-other-tier")
    assert finding.message == "staging's DATABASE_URL connects to production's database plyr-prd"
    assert finding.key == "environments.staging.backend.secrets[0]"


def test_two_tiers_connection_strings_naming_one_database_are_an_error(plyr: Path) -> None:
    store = Store(plyr.parent)
    same = "postgresql://app:{}@ep-one.eu-central-1.aws.neon.tech/neondb"
    fill(store, "staging", DATABASE_URL=same.format("stg"))
    fill(store, "production", DATABASE_URL=same.format("prd").replace("postgresql", "postgres"))
    assert messages(plyr, "secret-names-other-tier") == [
        "production's DATABASE_URL connects to staging's database or Redis (its DATABASE_URL)"
    ]


def test_values_no_key_here_can_read_are_not_judged(
    plyr: Path, own_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(plyr.parent)
    fill(store, "staging", DATABASE_URL=PRODUCTION_DB)
    fill(store, "production")
    keys = own_home / ".config" / "tiers" / "keys.txt"
    keys.rename(own_home / "elsewhere.txt")
    monkeypatch.setenv("SOPS_AGE_KEY", new_key()[0])
    assert findings(plyr, "secret-names-other-tier", "secret-missing", "secret-reused") == []


def test_secrets_in_a_dotenv_file_git_tracks(plyr: Path) -> None:
    root = plyr.parent
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".env").write_text("DEBUG=1\nSECRET_KEY=s3cr3t\n")
    (root / ".env.example").write_text(
        "DEBUG=1\nSECRET_KEY=\nSESSION_KEY=changeme\nAPI=postgresql://u:real@db/app\n"
    )
    (root / "backend").mkdir()
    (root / "backend" / "prod.env").write_text("SENTRY=kF9x2QmZ7pL4vR8tW1yB6nC3hJ5d\n")
    (root / "untracked.env").write_text("API_TOKEN=abc\n")
    subprocess.run(["git", "-C", str(root), "add", ".env", ".env.example", "backend"], check=True)
    assert messages(plyr, "secret-in-dotenv") == [
        ".env:2: SECRET_KEY looks like a secret, and git tracks the file",
        ".env.example:4: API has a password in its URL, and git tracks the file",
        "backend/prod.env:1: SENTRY holds what looks like a random key, and git tracks the file",
    ]


def test_a_random_looking_value_in_env_is_a_secret_in_config(edit: Edit) -> None:
    path = edit(
        (
            'frontend_url = "${environments.staging.frontend.url}"\n',
            'frontend_url = "${environments.staging.frontend.url}"\n'
            'env = { SENTRY = "kF9x2QmZ7pL4vR8tW1yB6nC3hJ5d", LOG_FORMAT = "json", '
            'SIGNING = "9f86d081884c7d659a2feaa0c55ad015", '
            'PROJECT_ID = "0b8e6a52-3f0c-4c7e-9d3a-2f1e5c6b7a8d" }\n',
        )
    )
    assert messages(path, "secret-in-config") == [
        "staging backend env SENTRY holds what looks like a random key",
        "staging backend env SIGNING holds what looks like a random key",
    ]


def test_a_tier_readable_by_another_tiers_key_is_an_error_where_tiers_toml_says_so(
    edit: Edit,
) -> None:
    """Ana reads both tiers and is allowed to; staging's CI key was added to production."""
    config = edit(
        ("[environments.production]\n", "[environments.production]\nshared_readers = []\n")
    )
    store = Store(config.parent)
    fill(store, "staging")
    fill(store, "production")
    ana = store.recipients("staging")[0]
    ci = new_key()[1]
    store.add_recipient("staging", ci)
    config.write_text(
        config.read_text().replace("shared_readers = []", f'shared_readers = ["{ana}"]')
    )
    added = tiers("secrets", "recipients", "add", "production", ci, "-c", str(config))
    assert added.returncode == 0, added.stderr
    assert added.stderr == (
        f"warning: production's secrets (secrets/production.yaml) are readable by {ci}, a "
        "recipient of staging, which environments.production.shared_readers does not list: "
        f"run `tiers secrets recipients rm production {ci}` (secret-readable-by-other-tier)\n"
    )

    (finding,) = findings(config, "secret-readable-by-other-tier")
    assert finding.message == (
        f"production's secrets (secrets/production.yaml) are readable by {ci}, a recipient "
        "of staging, which environments.production.shared_readers does not list: run "
        f"`tiers secrets recipients rm production {ci}`"
    )
    assert finding.key == "environments.production.shared_readers"
    assert finding.environments == ("production", "staging")
    assert "tiers secrets recipients rm ENV KEY" in finding.hint

    ok("secrets", "recipients", "rm", "production", ci, "-c", str(config))
    assert findings(config, "secret-readable-by-other-tier") == []
    assert ci in store.recipients("staging")  # staging's CI still reads staging


def test_who_reads_a_tier_is_judged_only_where_tiers_toml_says(edit: Edit) -> None:
    """Without shared_readers nothing is claimed; with [] even one person's key is named."""
    config = edit()
    store = Store(config.parent)
    fill(store, "staging")
    fill(store, "production")
    assert findings(config, "secret-readable-by-other-tier") == []
    edit(("[environments.production]\n", "[environments.production]\nshared_readers = []\n"))
    ana = store.recipients("staging")[0]
    assert [
        f.message.split(", ")[0] for f in findings(config, "secret-readable-by-other-tier")
    ] == [f"production's secrets (secrets/production.yaml) are readable by {ana}"]


def test_shared_readers_takes_age_public_keys_only(edit: Edit) -> None:
    config = edit(
        ("[environments.production]\n", '[environments.production]\nshared_readers = ["ana"]\n')
    )
    done = subprocess.run(
        [sys.executable, "-m", "tiers", "check", "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert (
        "environments.production.shared_readers[0]: 'ana' is not an age public key (age1…, "
        "as `tiers secrets init` prints)" in done.stderr
    )
