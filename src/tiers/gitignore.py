"""Keep tiers' own state (``.tiers/``, beside tiers.toml) out of git.

>>> ignore_state(Path("."))                                        # doctest: +SKIP
PosixPath('.gitignore')
"""

from __future__ import annotations

from pathlib import Path

from tiers.errors import UsageError
from tiers.files import atomic_write

__all__ = ["ignore_state"]

ENTRY = ".tiers/"
_SAME = {".tiers", ".tiers/", "/.tiers", "/.tiers/"}


def ignore_state(directory: Path) -> Path | None:
    """Add ``.tiers/`` to ``directory``'s .gitignore (made if absent); the file, or None
    when it already ignores it. Written atomically; the lines already there are kept."""
    path = directory / ".gitignore"
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    if any(line.strip() in _SAME for line in text.splitlines()):
        return None
    if text and not text.endswith("\n"):
        text += "\n"
    atomic_write(path, text + ENTRY + "\n")
    return path
