"""Fingerprints tell equal values apart across tiers, without a tier's key or a way back."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from tests.secrets.helpers import as_ci, new_key, ok, tiers
from tiers.secrets import entries


def _fingerprints(environment: str, env: dict[str, str] | None = None) -> dict[str, str]:
    listed = json.loads(ok("secrets", "ls", environment, "--json", env=env))
    return {s["name"]: s["fingerprint"] for s in listed["secrets"]}


def test_equal_values_have_equal_fingerprints_across_tiers(project: Path) -> None:
    for environment in ("staging", "production"):
        ok("secrets", "init", environment)
    ok("secrets", "set", "staging", "SECRET_KEY", input="shared-value")
    ok("secrets", "set", "production", "SECRET_KEY", input="shared-value")
    ok("secrets", "set", "staging", "OTHER", input="staging-only")
    ok("secrets", "set", "production", "OTHER", input="production-only")
    staging, production = _fingerprints("staging"), _fingerprints("production")
    assert staging["SECRET_KEY"] == production["SECRET_KEY"]
    assert staging["OTHER"] != production["OTHER"]
    assert len(staging["SECRET_KEY"]) == 32
    # Keyed: not a digest anyone can recompute from a guess.
    assert staging["SECRET_KEY"] not in hashlib.sha256(b"shared-value").hexdigest()
    assert ok("secrets", "diff", "staging", "production") == (
        "the same value in both: SECRET_KEY\ndifferent values: OTHER\n"
    )


def test_the_same_value_in_another_project_has_another_fingerprint(
    project: Path, tmp_path: Path, monkeypatch: object
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(project / "tiers.toml", other / "tiers.toml")
    ok("secrets", "init", "staging")
    ok("secrets", "init", "staging", "-c", str(other / "tiers.toml"))
    ok("secrets", "set", "staging", "SECRET_KEY", input="same")
    ok("secrets", "set", "staging", "SECRET_KEY", "-c", str(other / "tiers.toml"), input="same")
    ours = entries(project, "staging")[0].fingerprint
    theirs = entries(other, "staging")[0].fingerprint
    assert ours and theirs and ours != theirs


def test_a_tier_ci_key_fingerprints_like_everyone_else(project: Path, tmp_path: Path) -> None:
    """The staging CI key cannot read production, yet its fingerprints compare with it."""
    for environment in ("staging", "production"):
        ok("secrets", "init", environment)
    secret, public = new_key()
    ok("secrets", "recipients", "add", "staging", public)
    ok("secrets", "set", "production", "TOKEN", input="reused")
    ci = as_ci(secret, tmp_path)
    ok("secrets", "set", "staging", "TOKEN", input="reused", env=ci)
    assert _fingerprints("staging", ci) == _fingerprints("production", ci)
    assert tiers("secrets", "get", "production", "TOKEN", env=ci).returncode == 2
    # ls and diff need no key at all.
    nobody = {**ci, "SOPS_AGE_KEY": ""}
    assert "the same value in both: TOKEN" in ok(
        "secrets", "diff", "staging", "production", env=nobody
    )


def test_the_fingerprint_key_is_readable_by_every_recipient_of_every_tier(project: Path) -> None:
    for environment in ("staging", "production"):
        ok("secrets", "init", environment)
    staging_ci, production_ci = new_key()[1], new_key()[1]
    ok("secrets", "recipients", "add", "staging", staging_ci)
    ok("secrets", "recipients", "add", "production", production_ci)
    text = (project / "secrets" / "_fingerprint.yaml").read_text()
    assert staging_ci in text and production_ci in text
    ok("secrets", "recipients", "rm", "production", production_ci)
    assert production_ci not in (project / "secrets" / "_fingerprint.yaml").read_text()


def test_a_lost_fingerprint_key_is_not_silently_replaced(project: Path) -> None:
    ok("secrets", "init", "staging")
    ok("secrets", "set", "staging", "A", input="1")
    key_file = project / "secrets" / "_fingerprint.yaml"
    key_file.unlink()
    before = (project / "secrets" / "staging.yaml").read_text()
    done = tiers("secrets", "set", "staging", "B", input="2")
    assert (done.returncode, done.stderr) == (
        2,
        "error: secrets/_fingerprint.yaml is missing, yet the tiers hold fingerprints made with "
        "its key; restore it from git (git checkout -- secrets/_fingerprint.yaml)\n",
    )
    assert (project / "secrets" / "staging.yaml").read_text() == before
    assert not key_file.exists()
