"""The local platform: every tier of a project on one machine, no accounts, no containers.

- ``supervisor``: one process that runs the process groups, restarts them, keeps logs.
"""

from tiers.platforms.local.supervisor import SupervisorClient, spawn

__all__ = ["SupervisorClient", "spawn"]
