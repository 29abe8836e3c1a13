"""Which age keys this machine holds: SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, ~/.config/tiers/keys.txt."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.secrets.helpers import keys_txt, new_key, ok, sops, tiers
from tiers.errors import UsageError
from tiers.secrets.keys import identities, make_key


def test_a_new_key_is_private_and_in_age_keygen_format(own_home: Path, tmp_path: Path) -> None:
    made = make_key()
    path = keys_txt(own_home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# created: ")
    assert lines[1] == f"# public key: {made.public}"
    assert lines[2].startswith("AGE-SECRET-KEY-1")
    assert made.source == "~/.config/tiers/keys.txt"
    # sops takes the file as it is.
    plain = tmp_path / "p.yaml"
    plain.write_text("A: b\n")
    encrypted = tmp_path / "e.yaml"
    encrypted.write_text(sops("-e", "--age", made.public, str(plain)).stdout)
    assert sops("-d", str(encrypted), key_file=path).stdout == "A: b\n"


def test_every_source_is_read_each_key_once(
    own_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = make_key()
    ci_secret, ci_public = new_key()
    file_secret, file_public = new_key()
    key_file = tmp_path / "deploy.key"
    key_file.write_text(f"# a comment\n\n{file_secret}\n{ci_secret}\n")
    monkeypatch.setenv("SOPS_AGE_KEY", ci_secret)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key_file))
    assert [(i.public, i.source) for i in identities()] == [
        (ci_public, "SOPS_AGE_KEY"),
        (file_public, str(key_file)),
        (own.public, "~/.config/tiers/keys.txt"),
    ]


def test_a_keys_txt_others_can_read_is_refused_with_the_fix(project: Path, own_home: Path) -> None:
    ok("secrets", "init", "staging")
    path = keys_txt(own_home)
    path.chmod(0o644)
    before = (project / "secrets" / "staging.yaml").read_text()
    done = tiers("secrets", "set", "staging", "A", input="x")
    assert done.returncode == 2
    assert done.stderr == (
        "error: ~/.config/tiers/keys.txt can be read by others (mode 0644); make it private: "
        f"chmod 600 {path}\n"
    )
    assert (project / "secrets" / "staging.yaml").read_text() == before
    path.chmod(0o600)
    ok("secrets", "set", "staging", "A", input="x")


def test_a_mistyped_key_is_named_by_line_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    secret, _ = new_key()
    mistyped = secret[:-3] + "QQQ"
    monkeypatch.setenv("SOPS_AGE_KEY", f"{secret}\n{mistyped}\n")
    with pytest.raises(UsageError) as raised:
        identities()
    assert str(raised.value) == "SOPS_AGE_KEY: line 2 is not an age identity (AGE-SECRET-KEY-1…)"
    assert mistyped not in str(raised.value)


def test_a_missing_key_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(tmp_path / "gone.txt"))
    with pytest.raises(UsageError) as raised:
        identities()
    assert str(raised.value) == (
        f"cannot read the age keys in SOPS_AGE_KEY_FILE ({tmp_path}/gone.txt): "
        "No such file or directory"
    )


def test_who_set_a_value_is_the_login_name_without_a_git_email(plyr: Path) -> None:
    ok("secrets", "init", "staging")
    ok("secrets", "set", "staging", "A", input="1")
    assert ok("secrets", "ls", "staging").splitlines()[1].split()[4] == "ana"
