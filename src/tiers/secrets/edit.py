"""``tiers secrets edit``: a tier's values in ``$EDITOR``, never left on disk.

The values are written as dotenv to a file only this user can read (0600, in a private
temporary directory, on ``$XDG_RUNTIME_DIR`` where there is one, which is memory), the
editor runs on it, and the file is overwritten and removed whatever happens. What comes
back is checked as ``tiers secrets import`` checks a file before anything is encrypted.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from tiers.errors import OperationError, UsageError
from tiers.secrets import keys
from tiers.secrets.envfiles import Format, read_dotenv, render
from tiers.secrets.store import Store

__all__ = ["edit"]

_HEADER = """\
# {env}'s secrets ({file}): one NAME='value' a line, quoted as written here.
# Save and quit to encrypt them again; delete a line to remove that secret.
"""


def edit(store: Store, environment: str, editor: str) -> bool:
    """Let the user edit the tier's values; whether anything changed (and was written)."""
    tier = store.tier(environment)
    opened = tier.open(keys.identities())
    directory = Path(tempfile.mkdtemp(prefix="tiers-secrets-", dir=_memory()))
    path = directory / f"{environment}.env"
    try:
        body = _HEADER.format(env=environment, file=tier.shown) + render(
            opened.values, Format.dotenv, environment
        )
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(body + "\n")
        _run(editor, path, environment)
        try:
            values = read_dotenv(path.read_text(encoding="utf-8"), f"{environment}.env")
        except UnicodeDecodeError:
            raise UsageError(f"{environment}.env: not UTF-8 text") from None
    except UsageError as exc:
        raise UsageError(f"{exc}; {environment}'s secrets are unchanged") from None
    finally:
        _shred(path)
        shutil.rmtree(directory, ignore_errors=True)
    if values == opened.values:
        return False
    store.replace_all(environment, opened, values)
    return True


def _run(editor: str, path: Path, environment: str) -> None:
    argv = shlex.split(editor)
    if not argv or shutil.which(argv[0]) is None:
        raise UsageError(f"cannot run the editor {editor!r}: not found; set EDITOR to one")
    done = subprocess.run([*argv, str(path)], check=False)
    if done.returncode != 0:
        raise OperationError(
            f"the editor exited with {done.returncode}; {environment}'s secrets are unchanged"
        )


def _memory() -> str | None:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return runtime if runtime and Path(runtime).is_dir() else None


def _shred(path: Path) -> None:
    """Overwrite the plaintext before it is unlinked (an editor may have replaced it)."""
    try:
        size = path.stat().st_size
        with path.open("r+b") as handle:
            handle.write(b"\0" * size)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        pass
    path.unlink(missing_ok=True)
