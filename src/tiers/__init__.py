"""tiers: one declarative tiers.toml for a web team's development → staging → production.

The package is organised one folder per concept: ``config`` reads and validates
``tiers.toml`` into a typed model, ``checks`` proves the environments are separated,
``docs`` renders the environments document, ``importers`` adopts existing platform files
and ``cli`` is the thin command line on top.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
