"""The gate's own directory and the environment's secret.

Each protected environment's gate keeps its files in ``.tiers/gate/ENV/`` beside
tiers.toml (mode 0700): ``secret`` (32 random bytes that sign session cookies, login
flow cookies and tickets, and key the HMAC of one-time PINs), ``keys.json`` (the
assertion signing keys, see :mod:`tiers.gate.assertion`) and ``mail/`` (the local
mailbox, see :mod:`tiers.gate.otp`). Each environment has a secret of its own, so a
cookie signed for staging means nothing to production's gate.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from tiers.errors import OperationError
from tiers.files import atomic_write

__all__ = ["gate_dir", "private_write", "secret"]


def gate_dir(state_dir: Path, environment: str) -> Path:
    """``state_dir/gate/ENV``, made private (0700) if it is new."""
    directory = state_dir / "gate" / environment
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise OperationError(
            f"cannot create {directory} for the gate: {exc.strerror}; make {state_dir} writable"
        ) from exc
    return directory


def private_write(path: Path, body: str) -> None:
    """An atomic write of a file only its owner may read (0600, kept through the rename)."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    path.chmod(0o600)
    atomic_write(path, body)


def secret(directory: Path) -> bytes:
    """The environment's gate secret, made on first use."""
    path = directory / "secret"
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        text = ""
    except OSError as exc:
        raise OperationError(f"cannot read the gate secret {path}: {exc.strerror}") from exc
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 32:  # none yet (or unreadable): a new one, which signs everyone out
        key = secrets.token_bytes(32)
        private_write(path, key.hex() + "\n")
    return key
