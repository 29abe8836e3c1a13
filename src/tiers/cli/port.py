"""Placeholder: `tiers port` is registered here."""

from tiers.cli import app  # noqa: F401
