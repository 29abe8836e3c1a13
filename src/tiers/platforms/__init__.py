"""Platforms: where a service of an environment runs (local, fly, pages, ...).

A platform knows how to build, start, health-check, switch, stop and inspect a release of
a service in one environment; it never decides when. The local platform runs every tier
on this machine.
"""

__all__: list[str] = []
