"""The example's local staging (localhost ports) and a policy over any access table."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gate.service import write_config
from tiers.config import Environment, load, load_text

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plyr" / "tiers.toml"

SMALL = """
[project]
name = "demo"

[services.backend]
processes = {{ app = "python -m app" }}

[services.frontend]
output = "site"

[environments.staging]
trigger = {{ push = "main" }}
backend = {{ platform = "local", url = "http://localhost:8002" }}
frontend = {{ platform = "local", url = "http://localhost:5174" }}

[environments.staging.access]
protect = {protect}
preflight = "{preflight}"
login = ["otp", "github"]
allow = {allow}
bypass = {bypass}
"""


def environment(
    bypass: list[str] | None = None,
    allow: list[str] | None = None,
    *,
    protect: bool = True,
    preflight: str = "origin",
) -> Environment:
    """A staging on localhost:8002 (backend) and localhost:5174 (frontend)."""
    text = SMALL.format(
        protect=str(protect).lower(),
        preflight=preflight,
        allow=_toml(allow if allow is not None else ["email-domain:plyr.fm"]),
        bypass=_toml(bypass or []),
    )
    return load_text(text, "tiers.toml").config.environment("staging")


def _toml(items: list[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


@pytest.fixture
def staging() -> Environment:
    """examples/plyr's staging: otp, email-domain:plyr.fm, three bypasses on :8002."""
    return load(EXAMPLE).config.environment("staging")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with a protected staging (localhost:8002, :5174) and production."""
    write_config(tmp_path)
    return tmp_path
