"""`tiers docs` lists each tier's secrets: which are set, and who can read them."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Edit, tiers
from tests.secrets.helpers import new_key, own_home

from tiers.secrets import Store

__all__ = ["own_home"]  # each test has a home (and so a keys.txt) of its own

STAGING = ["DATABASE_URL", "OAUTH_ENCRYPTION_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]


def values_section(document: str) -> list[str]:
    start = document.index("**values**")
    return document[start : document.index("## database migrations")].strip().splitlines()


def test_each_tier_says_what_is_set_and_who_can_read_it(plyr: Path) -> None:
    store = Store(plyr.parent)
    own, _, _ = store.init("staging")
    store.set("staging", {name: f"staging-{name}" for name in STAGING} | {"OLD_TOKEN": "x"})
    ci = new_key()[1]
    store.add_recipient("staging", ci)
    fingerprints = [entry.fingerprint for entry in store.entries("staging")]
    result = tiers("docs")
    assert result.returncode == 0, result.stderr
    assert values_section(result.stdout) == [
        "**values** (each tier's own file, encrypted for the keys that may read that tier only; "
        "`tiers secrets ls ENV` shows when and by whom each was set):",
        "- staging (`secrets/staging.yaml`): set: `DATABASE_URL`, `OAUTH_ENCRYPTION_KEY`, "
        "`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`; not set: `LOGFIRE_WRITE_TOKEN`; "
        "also: `OLD_TOKEN`",
        f"  - readable by: `{own.public}`, `{ci}`",
        "- production: no `secrets/production.yaml` yet, so none set "
        "(`tiers secrets init production`); not set: `DATABASE_URL`, `OAUTH_ENCRYPTION_KEY`, "
        "`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `LOGFIRE_WRITE_TOKEN`",
    ]
    for fingerprint in fingerprints:
        assert fingerprint and fingerprint not in result.stdout
    assert "staging-DATABASE_URL" not in result.stdout


def test_a_value_set_changes_the_document_check_compares(plyr: Path) -> None:
    assert tiers("docs", "-o", "environments.md").returncode == 0
    store = Store(plyr.parent)
    store.init("production")
    store.set("production", {"DATABASE_URL": "postgresql://u:pw@db/plyr"})
    stale = tiers("docs", "--check", "environments.md")
    assert stale.returncode == 1
    assert (
        "+- production (`secrets/production.yaml`): set: `DATABASE_URL`; not set:" in stale.stdout
    )


def test_a_tier_whose_readers_tiers_toml_limits_says_so(edit: Edit) -> None:
    ana = new_key()[1]
    config = edit(
        ("[environments.production]\n", f'[environments.production]\nshared_readers = ["{ana}"]\n')
    )
    store = Store(config.parent)
    own, _, _ = store.init("production")
    store.set("production", {"DATABASE_URL": "postgresql://u:pw@db/plyr"})
    result = tiers("docs")
    assert result.returncode == 0, result.stderr
    assert values_section(result.stdout)[-2:] == [
        f"  - readable by: `{own.public}`",
        f"  - readable by no reader of another tier but `{ana}` (`shared_readers`, held by "
        "`tiers check`)",
    ]
