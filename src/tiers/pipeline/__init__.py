"""The deploy pipeline: one state machine for every platform.

resolve ref → build an immutable release from exactly that commit → snapshot the database
→ release command → start beside the old version → health check → switch traffic → drain
the old → record. Every step and every end state (succeeded, failed before the switch,
rolled back, interrupted) is recorded in the state store; a failure before the switch
leaves the old version serving and the database as it was.

- ``deploy``: what a deploy ships and shipping it (``tiers deploy``, ``tiers up``);
  ``commit``: the tiers.toml a commit carries, and what is not deployed.
- ``plan``: steps as data; ``steps``: the plans of a deploy and a rollback, each step
  saying what it does (``--dry-run``), doing it and undoing it; ``run``: running a plan,
  recorded, under the environment's lock.
- ``rollback``: ``tiers rollback``; ``promotion``: only what the tier before ran;
  ``recovery``: repairing what a killed run left.
- ``release``, ``triggers``: ``tiers release``, ``tiers on-push`` and ``tiers on-release``.
- ``migrations``: the app's migration files, read for what a downgrade would destroy;
  ``paths``: which services a change touches; ``report``: progress on a terminal or in CI.
"""

__all__: list[str] = []
