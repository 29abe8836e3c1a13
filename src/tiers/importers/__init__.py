"""Adopting tiers from the files a platform already has: ``tiers import fly``.

An importer reads a platform's own configuration, maps what it understands onto the
tiers.toml model and lists what it could not, so nothing is dropped silently.

>>> from pathlib import Path
>>> from tiers.importers import import_fly
>>> result = import_fly([Path("fly.staging.toml"), Path("fly.toml")])   # doctest: +SKIP
>>> result.environments                                                 # doctest: +SKIP
['staging', 'production']
"""

from tiers.importers.draft import Imported, check_target
from tiers.importers.fly import import_fly

__all__ = ["Imported", "check_target", "import_fly"]
