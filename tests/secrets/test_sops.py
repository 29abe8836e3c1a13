"""The format is SOPS's own: the real sops binary reads what tiers writes, and back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.secrets.helpers import keys_txt, new_key, ok, sops, tiers
from tiers.secrets import CorruptFile, values


def test_sops_decrypts_what_tiers_writes(project: Path, own_home: Path) -> None:
    ok("secrets", "init", "staging")
    ok("secrets", "set", "staging", "DATABASE_URL", input="postgresql://u:p@db/plyr_stg\n")
    ok("secrets", "set", "staging", "PEM", input="-----BEGIN-----\nline 2\n-----END-----\n")
    done = sops("-d", "secrets/staging.yaml", key_file=keys_txt(own_home))
    assert done.returncode == 0, done.stderr
    plain = yaml.safe_load(done.stdout)
    assert plain["DATABASE_URL"] == "postgresql://u:p@db/plyr_stg"
    assert plain["PEM"] == "-----BEGIN-----\nline 2\n-----END-----"  # one final newline dropped
    assert "DATABASE_URL: {set: " in plain["tiers_unencrypted"]  # the facts, under the MAC too
    # The tier's values reach a process through sops exec-env as well.
    env = sops(
        "exec-env", "secrets/staging.yaml", "echo $DATABASE_URL", key_file=keys_txt(own_home)
    )
    assert env.stdout == "postgresql://u:p@db/plyr_stg\n", env.stderr


def test_tiers_reads_what_sops_writes(project: Path, tmp_path: Path) -> None:
    secret, public = new_key()
    key_file = tmp_path / "ci.txt"
    key_file.write_text(secret + "\n")
    plain = tmp_path / "plain.yaml"
    plain.write_text("SECRET_KEY: s3cr3t\nWORKERS: 4\nDEBUG: false\nEMPTY: ''\n")
    encrypted = sops("-e", "--age", public, str(plain))
    assert encrypted.returncode == 0, encrypted.stderr
    (project / "secrets").mkdir()
    (project / "secrets" / "staging.yaml").write_text(encrypted.stdout)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SOPS_AGE_KEY_FILE", str(key_file))
        assert values(project, "staging") == {
            "SECRET_KEY": "s3cr3t",
            "WORKERS": "4",
            "DEBUG": "false",
            "EMPTY": "",
        }
    # What sops set has no facts yet; names are listed all the same, without a key.
    listed = json.loads(ok("secrets", "ls", "staging", "--json"))
    assert listed["secrets"][0] == {
        "name": "SECRET_KEY",
        "set": None,
        "by": None,
        "fingerprint": None,
    }
    assert listed["recipients"] == [public]


def test_a_file_both_edit_stays_readable_by_both(project: Path, own_home: Path) -> None:
    ok("secrets", "init", "staging")
    ok("secrets", "set", "staging", "A", input="one")
    edited = sops("set", "secrets/staging.yaml", '["B"]', '"two"', key_file=keys_txt(own_home))
    assert edited.returncode == 0, edited.stderr
    ok("secrets", "set", "staging", "C", input="three")
    done = sops("-d", "secrets/staging.yaml", key_file=keys_txt(own_home))
    assert done.returncode == 0, done.stderr
    assert {k: v for k, v in yaml.safe_load(done.stdout).items() if k != "tiers_unencrypted"} == {
        "A": "one",
        "B": "two",
        "C": "three",
    }
    assert "\nB " in ok("secrets", "ls", "staging")


def test_an_unchanged_value_keeps_its_ciphertext(project: Path) -> None:
    ok("secrets", "init", "staging")
    ok("secrets", "set", "staging", "A", input="one")
    before = _line("A", project / "secrets" / "staging.yaml")
    ok("secrets", "set", "staging", "B", input="two")
    assert _line("A", project / "secrets" / "staging.yaml") == before  # a one-line diff
    ok("secrets", "rotate", "staging")
    assert _line("A", project / "secrets" / "staging.yaml") != before


def test_values_moved_to_another_name_do_not_decrypt(project: Path) -> None:
    ok("secrets", "init", "staging")
    ok("secrets", "set", "staging", "A", input="one")
    ok("secrets", "set", "staging", "B", input="two")
    path = project / "secrets" / "staging.yaml"
    a, b = _line("A", path), _line("B", path)
    swapped = path.read_text().replace(a, "@").replace(b, a.replace("A:", "B:", 1))
    path.write_text(swapped.replace("@", b.replace("B:", "A:", 1)))
    with pytest.raises(CorruptFile) as raised:
        values(project, "staging")
    assert str(raised.value) == (
        "secrets/staging.yaml: A cannot be decrypted: its ciphertext or name was changed; "
        "restore it from git (git checkout -- secrets/staging.yaml)"
    )
    assert tiers("secrets", "get", "staging", "A").returncode == 2


def _line(name: str, path: Path) -> str:
    return next(line for line in path.read_text().splitlines() if line.startswith(f"{name}:"))


def test_a_file_whose_sops_rules_leave_values_in_plaintext_is_not_written(
    project: Path, tmp_path: Path
) -> None:
    secret, public = new_key()
    key_file = tmp_path / "k.txt"
    key_file.write_text(secret + "\n")
    plain = tmp_path / "plain.yaml"
    plain.write_text("DATA_KEY: hidden\nOTHER: shown\n")
    encrypted = sops("-e", "--age", public, "--encrypted-regex", "^DATA", str(plain))
    assert encrypted.returncode == 0, encrypted.stderr
    path = project / "secrets" / "staging.yaml"
    path.parent.mkdir()
    path.write_text(encrypted.stdout)
    assert "OTHER: shown" in encrypted.stdout
    env = {"SOPS_AGE_KEY_FILE": str(key_file)}
    assert ok("secrets", "get", "staging", "DATA_KEY", env=env) == "hidden\n"
    done = tiers("secrets", "set", "staging", "DATA_NEW", input="x", env=env)
    assert (done.returncode, done.stderr) == (
        2,
        "error: secrets/staging.yaml: its sops rules would leave OTHER unencrypted, and tiers "
        "writes no secret in plaintext; make the file again with tiers\n",
    )
    assert path.read_text() == encrypted.stdout
