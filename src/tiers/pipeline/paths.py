"""Which services a change touches: ``paths`` globs matched against changed files.

``**`` spans directories (``backend/src/**`` matches ``backend/src`` and everything
below it; ``a/**/b.py`` matches ``a/b.py`` and ``a/x/y/b.py``), ``*`` and ``?`` do not.

>>> matches("backend/src/plyr/api.py", "backend/src/**")
True
>>> matches("frontend/index.html", "backend/**")
False
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from tiers.config import Config
from tiers.git import Repo

__all__ = ["matches", "project_paths", "touched"]


def touched(config: Config, config_path: Path, paths: list[str]) -> list[str]:
    """The services whose ``paths`` globs match any of ``paths`` (repository-relative);
    every service when the config file itself changed."""
    repo = Repo.find(config_path.parent)
    local = project_paths(config_path, repo, paths)
    if config_path.name in local:
        return list(config.services)
    return [
        name
        for name, spec in config.services.items()
        if any(matches(path, glob) for path in local for glob in spec.paths)
    ]


def project_paths(config_path: Path, repo: Repo, paths: list[str]) -> list[str]:
    """``paths`` (repository-relative) inside the project, relative to its tiers.toml."""
    prefix = config_path.parent.relative_to(repo.root).as_posix()
    prefix = "" if prefix == "." else prefix + "/"
    return [p.removeprefix(prefix) for p in paths if p.startswith(prefix)]


def matches(path: str, glob: str) -> bool:
    """Whether ``path`` matches ``glob``: ``**`` spans directories, ``*`` does not."""
    return re.fullmatch(_regex(glob), path) is not None


@cache
def _regex(glob: str) -> str:
    out = ""
    for part in re.split(r"(/\*\*$|\*\*/|\*\*|\*|\?)", glob):
        if part == "/**":
            out += "(?:/.*)?"  # the directory itself, or anything below it
        elif part == "**/":
            out += "(?:.*/)?"  # any directories, or none
        elif part == "**":
            out += ".*"
        elif part == "*":
            out += "[^/]*"
        elif part == "?":
            out += "[^/]"
        else:
            out += re.escape(part)
    return out
