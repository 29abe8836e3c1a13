from __future__ import annotations

from pathlib import Path

import pytest

from tests.checks.test_store import stock
from tests.conftest import tiers


def test_init_example_then_check_asks_for_the_secrets_then_is_clean(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path_factory.mktemp("home")  # a key of the test's own, outside the project
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    assert tiers("init", "--example", "plyr").returncode == 0
    assert "# tiers.toml for plyr.fm" in (tmp_path / "tiers.toml").read_text()
    check = tiers("check")
    assert check.returncode == 1
    errors = [line for line in check.stdout.splitlines() if " error [" in line]
    assert len(errors) == 10  # five secrets in staging and in production
    assert all(" error [secret-missing] " in line for line in errors)
    stock(tmp_path / "tiers.toml")
    assert tiers("check").returncode == 0


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    target = tmp_path / "tiers.toml"
    target.write_text("mine")
    result = tiers("init")
    assert result.returncode == 2
    assert "tiers.toml already exists; pass --force to overwrite it" in result.stderr
    assert target.read_text() == "mine"
    assert tiers("init", "--force").returncode == 0
    assert target.read_text().startswith("# tiers.toml:")


def test_init_unknown_example_names_the_known_ones(tmp_path: Path) -> None:
    result = tiers("init", "--example", "plyrr")
    assert result.returncode == 2
    assert "--example plyrr: no such example; known: plyr" in result.stderr
    assert not (tmp_path / "tiers.toml").exists()


def test_init_leaves_no_temporary_files(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    assert tiers("init", "-c", "deploy/tiers.toml").returncode == 0
    assert sorted(p.name for p in (tmp_path / "deploy").iterdir()) == [".gitignore", "tiers.toml"]


def test_an_unwritable_target_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    result = tiers("init", "-c", "taken", "--force")
    assert result.returncode == 2
    assert result.stderr == "error: cannot write taken: it is a directory\n"
    tiers("init")
    result = tiers("docs", "-o", "taken")
    assert result.returncode == 2
    assert "cannot write taken: it is a directory" in result.stderr


def test_init_keeps_tiers_state_out_of_git(tmp_path: Path) -> None:
    made = tiers("init")
    assert made.returncode == 0, made.stderr
    assert "added .tiers/ (tiers' own state) to .gitignore" in made.stdout
    assert (tmp_path / ".gitignore").read_text() == ".tiers/\n"
    again = tiers("init", "--force")  # already there: not added twice
    assert "gitignore" not in again.stdout
    assert (tmp_path / ".gitignore").read_text() == ".tiers/\n"


def test_init_appends_to_an_existing_gitignore(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("__pycache__/\n*.log")  # no final newline
    assert tiers("init").returncode == 0
    assert (tmp_path / ".gitignore").read_text() == "__pycache__/\n*.log\n.tiers/\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitignore", "tiers.toml"]
