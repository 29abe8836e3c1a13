"""Configuration, read from the environment only.

Every process of the backend (the API and the worker) reads the same variables, so one
environment's configuration is one set of variables. A missing or malformed variable
stops the process at start with one line naming it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

REQUIRED = {
    "DATABASE_URL": "the database, like postgresql://postgres@127.0.0.1:5432/plyr-dev "
    "or sqlite:///plyr.db",
    "DOCKET_URL": "the Redis the background tasks go through, like redis://127.0.0.1:6379/0",
    "FRONTEND_URL": "the frontend allowed by CORS, like http://localhost:5173",
    "ATPROTO_APP_NAMESPACE": "the app namespace of this environment, like fm.plyr.dev",
    "STORAGE_DIR_AUDIO": "the directory of the audio bucket",
    "STORAGE_DIR_IMAGES": "the directory of the images bucket",
}

ENCRYPTION_KEY = "OAUTH_ENCRYPTION_KEY"
"""The key the OAuth client's stored sessions are encrypted with: one per tier, so a
session encrypted by staging means nothing to production. Every deployed tier must have
its own (tiers refuses a deploy without it, and so does the backend itself); only
development, which runs the work tree on a laptop, may go without."""
OPTIONAL_KEY_IN = ("development",)


class SettingsError(ValueError):
    """The environment does not hold a usable configuration."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    docket_url: str
    frontend_url: str
    namespace: str
    audio_dir: Path
    images_dir: Path
    oauth_client_id: str | None = None
    oauth_redirect_uri: str | None = None
    oauth_encryption_key: str | None = field(default=None, repr=False)
    observability_environment: str | None = None
    environment: str | None = None
    """The tier this process runs in (TIERS_ENVIRONMENT), reported by /health."""
    version: str | None = None
    commit: str | None = None
    port: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        missing = [name for name in REQUIRED if not env.get(name, "").strip()]
        if missing:
            raise SettingsError(
                "missing environment variable"
                + ("s " if len(missing) > 1 else " ")
                + "; ".join(f"{name} ({REQUIRED[name]})" for name in missing)
            )
        return cls(
            database_url=database_url(env),
            docket_url=_redis_url(env["DOCKET_URL"].strip()),
            frontend_url=env["FRONTEND_URL"].strip().rstrip("/"),
            namespace=env["ATPROTO_APP_NAMESPACE"].strip(),
            audio_dir=Path(env["STORAGE_DIR_AUDIO"]).expanduser().resolve(),
            images_dir=Path(env["STORAGE_DIR_IMAGES"]).expanduser().resolve(),
            oauth_client_id=_optional(env, "ATPROTO_CLIENT_ID"),
            oauth_redirect_uri=_optional(env, "ATPROTO_REDIRECT_URI"),
            oauth_encryption_key=_encryption_key(env),
            observability_environment=_optional(env, "LOGFIRE_ENVIRONMENT"),
            environment=_optional(env, "TIERS_ENVIRONMENT"),
            version=_optional(env, "TIERS_VERSION"),
            commit=_optional(env, "TIERS_COMMIT"),
            port=_port(env),
        )


def database_url(env: Mapping[str, str]) -> str:
    """DATABASE_URL as SQLAlchemy wants it: ``postgresql://`` is served by psycopg 3."""
    url = env.get("DATABASE_URL", "").strip()
    if not url:
        raise SettingsError(
            f"missing environment variable DATABASE_URL ({REQUIRED['DATABASE_URL']})"
        )
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise SettingsError(
            f"DATABASE_URL is not a URL: it has no scheme ({REQUIRED['DATABASE_URL']})"
        )
    if scheme in ("postgres", "postgresql", "postgresql+psycopg"):
        return f"postgresql+psycopg://{rest}"
    if scheme == "sqlite":
        return url
    raise SettingsError(
        f"DATABASE_URL uses {scheme}://, which plyr does not speak; use postgresql:// or sqlite://"
    )


def _redis_url(url: str) -> str:
    if url.partition("://")[0] not in ("redis", "rediss", "unix"):
        raise SettingsError("DOCKET_URL is not a Redis URL: use redis://, rediss:// or unix://")
    return url


def _encryption_key(env: Mapping[str, str]) -> str | None:
    key = _optional(env, ENCRYPTION_KEY)
    environment = _optional(env, "TIERS_ENVIRONMENT")
    if key is None and environment not in OPTIONAL_KEY_IN:
        why = (
            f"{environment} needs its own, as every tier but development does"
            if environment
            else "every tier but development needs its own, and TIERS_ENVIRONMENT does not "
            "say this is development"
        )
        raise SettingsError(
            f"missing environment variable {ENCRYPTION_KEY} (the key OAuth sessions are "
            f"encrypted with, one per tier; {why}: "
            f"`tiers secrets generate {environment or 'ENV'} {ENCRYPTION_KEY} --format fernet`)"
        )
    return key


def _optional(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name, "").strip() or None


def _port(env: Mapping[str, str]) -> int | None:
    raw = _optional(env, "PORT")
    if raw is None:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SettingsError(f"PORT is {raw!r}, not a TCP port number")
    return int(raw)


def load() -> Settings:
    """The settings of this process, or exit with one line naming what is wrong."""
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise SystemExit(f"plyr-backend: {exc}") from None
