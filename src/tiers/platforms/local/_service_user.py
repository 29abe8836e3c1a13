"""The unprivileged user a server runs as when tiers itself runs as root.

PostgreSQL will not run as root. Under root, its programs run as the ``postgres`` user
(``nobody`` where there is none), which then owns the cluster's directory and must be
able to reach it: every directory on the way needs its execute bit for that user.
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from tiers.errors import PlatformError

_CANDIDATES = ("postgres", "nobody")


@dataclass(frozen=True)
class ServiceUser:
    name: str
    uid: int
    gid: int
    groups: list[int]
    home: str

    def env(self) -> dict[str, str]:
        """The variables a program run as this user expects to describe it."""
        return {"HOME": self.home, "USER": self.name, "LOGNAME": self.name}

    def take(self, directory: Path, inside: list[Path]) -> None:
        """Make ``directory`` this user's; all of it when one of ``inside`` is not yet."""
        if directory.stat().st_uid != self.uid:
            os.chown(directory, self.uid, self.gid)
        if any(path.exists() and path.stat().st_uid != self.uid for path in inside):
            self._chown_tree(directory)

    def check_reachable(self, path: Path, what: str) -> None:
        """Refuse when a directory on the way to ``path`` cannot be entered by this user."""
        for part in [*reversed(path.parents), path]:
            if not self._can_enter(part.stat()):
                raise PlatformError(
                    f"{what}: PostgreSQL does not run as root, so tiers runs it as user "
                    f"{self.name}, who cannot enter {part}; allow it (chmod o+x {part}) "
                    "or run tiers as another user than root"
                )

    def _can_enter(self, info: os.stat_result) -> bool:
        # the owner's bits alone apply to the owner, the group's alone to its members
        if info.st_uid == self.uid:
            return bool(info.st_mode & stat.S_IXUSR)
        if info.st_gid in self.groups:
            return bool(info.st_mode & stat.S_IXGRP)
        return bool(info.st_mode & stat.S_IXOTH)

    def _chown_tree(self, top: Path) -> None:
        for folder, dirs, files in os.walk(top):
            for name in [*dirs, *files]:
                os.chown(Path(folder) / name, self.uid, self.gid, follow_symlinks=False)
        os.chown(top, self.uid, self.gid)


def service_user() -> ServiceUser | None:
    """The user to run servers as: None unless tiers runs as root."""
    if os.geteuid() != 0:
        return None
    for name in _CANDIDATES:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
        return ServiceUser(name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir)
    raise PlatformError(
        "PostgreSQL does not run as root and neither user postgres nor nobody exists; "
        "create one: useradd --system postgres"
    )
