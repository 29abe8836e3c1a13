"""Starting points for tiers.toml: a commented default and worked examples."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from tiers.errors import UsageError
from tiers.files import atomic_write, exists

EXAMPLES = ("plyr",)


def text(example: str | None = None) -> str:
    name = "default" if example is None else example
    if example is not None and example not in EXAMPLES:
        raise UsageError(f"--example {example}: no such example; known: {', '.join(EXAMPLES)}")
    return resources.files(__name__).joinpath(f"{name}.toml").read_text(encoding="utf-8")


def write(path: Path, example: str | None = None, force: bool = False) -> Path:
    """Write the template to ``path`` atomically; refuse to overwrite unless ``force``."""
    body = text(example)
    if exists(path) and not force:
        raise UsageError(f"{path} already exists; pass --force to overwrite it")
    atomic_write(path, body, parents=False)
    return path
