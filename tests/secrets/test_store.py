"""Each tier's secrets are readable by its own recipients only, through every change."""

from __future__ import annotations

from pathlib import Path

import pyrage
import pytest

from tests.secrets.helpers import as_ci, new_key, ok, tiers
from tiers.secrets import Unreadable, entries, has_file, recipients, sops, values
from tiers.secrets.keys import identities


@pytest.fixture
def tiers_with_ci(project: Path, tmp_path: Path) -> dict[str, dict[str, str]]:
    """staging and production, each with a secret and a CI key of its own."""
    env = {}
    for environment in ("staging", "production"):
        ok("secrets", "init", environment)
        ok("secrets", "set", environment, "SECRET_KEY", input=f"{environment}-value")
        secret, public = new_key()
        ok("secrets", "recipients", "add", environment, public)
        env[environment] = as_ci(secret, tmp_path / environment)
    return env


def test_a_staging_key_cannot_read_production(
    project: Path, tiers_with_ci: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    staging_ci = tiers_with_ci["staging"]
    for name, value in staging_ci.items():
        monkeypatch.setenv(name, value)
    assert values(project, "staging") == {"SECRET_KEY": "staging-value"}
    mine = identities()[0].public
    with pytest.raises(Unreadable) as raised:
        values(project, "production")
    assert str(raised.value) == (
        f"no identity here can read production's secrets; recipients: "
        f"{', '.join(recipients(project, 'production'))}; keys here: {mine} (SOPS_AGE_KEY)"
    )
    assert mine not in recipients(project, "production")
    # Names and facts need no key.
    assert [e.name for e in entries(project, "production")] == ["SECRET_KEY"]
    assert has_file(project, "production") and not has_file(project, "development")


def test_a_removed_recipient_never_sees_the_new_data_key(
    project: Path, tiers_with_ci: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    ci_secret = tiers_with_ci["production"]["SOPS_AGE_KEY"]
    ci = pyrage.x25519.Identity.from_str(ci_secret)
    path = project / "secrets" / "production.yaml"
    old = sops.parse(path.read_text(), "production.yaml")
    old_key = pyrage.decrypt(dict(old.stanzas)[str(ci.to_public())].encode(), [ci])
    ok("secrets", "recipients", "rm", "production", str(ci.to_public()))
    new = sops.parse(path.read_text(), "production.yaml")
    assert str(ci.to_public()) not in new.recipients
    with pytest.raises(sops.CorruptFile):  # the key it may have kept opens nothing new
        sops.decrypt(new, old_key)
    assert ok("secrets", "get", "production", "SECRET_KEY") == "production-value\n"
    done = tiers("secrets", "get", "production", "SECRET_KEY", env=tiers_with_ci["production"])
    assert done.returncode == 2
    assert done.stderr.startswith("error: no identity here can read production's secrets;")


def test_a_new_recipient_reads_the_tier_and_only_it(
    project: Path, tiers_with_ci: dict[str, dict[str, str]]
) -> None:
    ci = tiers_with_ci["staging"]
    assert ok("secrets", "get", "staging", "SECRET_KEY", env=ci) == "staging-value\n"
    assert ok("secrets", "export", "staging", "-f", "json", env=ci) == (
        '{\n  "SECRET_KEY": "staging-value"\n}\n'
    )
    assert tiers("secrets", "export", "production", env=ci).returncode == 2


def test_rotate_makes_a_new_data_key_for_the_same_recipients(
    project: Path, tiers_with_ci: dict[str, dict[str, str]]
) -> None:
    path = project / "secrets" / "staging.yaml"
    before = sops.parse(path.read_text(), "staging.yaml")
    assert ok("secrets", "rotate", "staging") == (
        "staging: a new data key; every value re-encrypted\n"
    )
    after = sops.parse(path.read_text(), "staging.yaml")
    assert after.recipients == before.recipients
    assert after.tree["SECRET_KEY"] != before.tree["SECRET_KEY"]
    assert ok("secrets", "get", "staging", "SECRET_KEY", env=tiers_with_ci["staging"]) == (
        "staging-value\n"
    )


def test_keys_of_other_types_are_kept_and_never_left_behind(project: Path) -> None:
    """A file sops also wrapped for a PGP key keeps it; a new data key is refused for it."""
    ok("secrets", "init", "staging")
    path = project / "secrets" / "staging.yaml"
    pgp = "    pgp:\n        -   created_at: '2026-01-01T00:00:00Z'\n            enc: x\n"
    pgp += "            fp: ABCD\n"
    path.write_text(
        path.read_text().replace("    unencrypted_suffix:", pgp + "    unencrypted_suffix:")
    )
    ok("secrets", "set", "staging", "A", input="1")
    assert "fp: ABCD" in path.read_text()
    before = path.read_text()
    done = tiers("secrets", "rotate", "staging")
    assert (done.returncode, done.stderr) == (
        2,
        "error: secrets/staging.yaml also has pgp keys, which tiers cannot wrap a new data key "
        "for; rotate it with `sops rotate -i`\n",
    )
    assert path.read_text() == before
