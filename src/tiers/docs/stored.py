"""Each tier's secrets as its store holds them: which are set and who can read them.

Names and recipients only, read without any key; never a value or a fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tiers import secrets
from tiers.checks.secretfiles import needed
from tiers.config import Config


@dataclass(frozen=True)
class TierSecrets:
    environment: str
    file: str
    exists: bool
    set: list[str]
    """Needed and set."""
    unset: list[str]
    """Needed, with no value yet."""
    unused: list[str]
    """Set, though no service or resource of the tier names it."""
    readers: list[str]
    """The age public keys the tier's file is encrypted for."""
    shared: list[str] | None = None
    """The readers of other tiers allowed to read this one (``shared_readers``); None:
    tiers.toml says nothing of it."""


def tiers(config: Config, project_dir: Path | None) -> list[TierSecrets]:
    """Every tier that needs a secret or has a secrets file, in promotion order.

    ``project_dir`` is where tiers.toml (and so ``secrets/``) is; None: no store to read.
    """
    found = []
    for name in config.order:
        env = config.environments[name]
        wanted = [] if env.local else list(needed(env))
        exists = project_dir is not None and secrets.has_file(project_dir, name)
        if not wanted and not exists:
            continue
        have: list[str] = []
        readers: list[str] = []
        if project_dir is not None and exists:
            have = [entry.name for entry in secrets.entries(project_dir, name)]
            readers = secrets.recipients(project_dir, name)
        found.append(
            TierSecrets(
                environment=name,
                file=f"{secrets.DIRECTORY}/{name}.yaml",
                exists=exists,
                set=[n for n in wanted if n in have],
                unset=[n for n in wanted if n not in have],
                unused=[n for n in have if n not in wanted],
                readers=readers,
                shared=env.shared_readers,
            )
        )
    return found
