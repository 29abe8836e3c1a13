"""The deploy pipeline: one state machine for every platform.

resolve ref → build an immutable release from exactly that commit → snapshot the database
→ release command → start beside the old version → health check → switch traffic → drain
the old → record. Every step and every end state (succeeded, failed before the switch,
rolled back, interrupted) is recorded in the state store; a failure before the switch
leaves the old version serving and the database as it was.

- ``deploy``: the pipeline itself and ``tiers deploy``; ``rollback``: ``tiers rollback``.
- ``release``, ``triggers``: ``tiers release``, ``tiers on-push`` and ``tiers on-release``.
- ``databases``: snapshot, restore and inspect an environment's database.
- ``migrations``: the app's migration files, read for what a downgrade would destroy.
- ``report``: live progress on a terminal, timestamped lines elsewhere.
"""

__all__: list[str] = []
