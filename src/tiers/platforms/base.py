"""The platform interface: what every platform (local, fly, pages, ...) implements.

A platform knows how to bring a service of one environment up, report on it and take it
down; it never decides *when* (the CLI and the pipeline do). Platforms are found through
the ``tiers.platforms`` entry-point group, which the built-in local platform uses too, so a
package adds one by declaring, in its own ``pyproject.toml``::

    [project.entry-points."tiers.platforms"]
    fly = "tiers_fly:FlyPlatform"

and implementing this protocol::

    class FlyPlatform:
        name = "fly"

        def __init__(self, config: Config, project_dir: Path) -> None: ...
        def up(self, environment, release=None, with_optional=()) -> None: ...
        def stop_environment(self, environment) -> None: ...
        def status(self) -> list[dict[str, Any]]: ...
        def down(self) -> None: ...

>>> platform = load_platform("local")(config, Path("."))      # doctest: +SKIP
>>> platform.up("staging")
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from tiers.config import Config
from tiers.errors import UsageError
from tiers.platforms.runtime import Release

__all__ = ["GROUP", "Platform", "available", "load_platform"]

GROUP = "tiers.platforms"


@runtime_checkable
class Platform(Protocol):
    """One place services run. Every method may be called again without harm."""

    name: ClassVar[str]
    """The name tiers.toml uses in ``platform = "..."``."""

    def __init__(self, config: Config, project_dir: Path) -> None:
        """``project_dir`` holds tiers.toml; a platform keeps its state under ``.tiers/``."""

    def up(
        self, environment: str, release: Release | None = None, with_optional: tuple[str, ...] = ()
    ) -> None:
        """Start what ``environment`` needs and return once it serves (health answered).

        Raises PlatformError naming the part that failed and why, having stopped what it
        started; other environments are left alone.
        """

    def stop_environment(self, environment: str) -> None:
        """Stop ``environment``'s processes and data services; data stays."""

    def status(self) -> list[dict[str, Any]]:
        """Per environment: ``environment``, ``processes`` and ``services`` with health."""

    def down(self) -> None:
        """Stop everything this platform started for the project."""


def available() -> dict[str, str]:
    """Every registered platform: name → ``module:Class``; a name taken twice is refused."""
    found: dict[str, str] = {}
    for point in entry_points(group=GROUP):
        if point.name in found and found[point.name] != point.value:
            raise UsageError(
                f"two packages register the platform {point.name!r} "
                f"({found[point.name]} and {point.value}); uninstall one"
            )
        found[point.name] = point.value
    return found


def load_platform(name: str) -> type[Platform]:
    """The class of platform ``name``, imported on first use."""
    registered = available()
    if name not in registered:
        known = ", ".join(sorted(registered)) or "none"
        raise UsageError(
            f"no platform {name!r} is installed (known: {known}); "
            "install the package that provides it"
        )
    point = next(p for p in entry_points(group=GROUP) if p.name == name)
    cls = point.load()
    if not isinstance(cls, type) or not all(
        callable(getattr(cls, m, None)) for m in ("up", "stop_environment", "status", "down")
    ):
        raise UsageError(f"platform {name!r} ({point.value}) does not implement tiers' interface")
    return cls
