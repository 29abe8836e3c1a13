"""The example project's tiers.toml: tiers accepts it and its tiers share nothing."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from tests.conftest import tiers
from tiers.config import load

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plyr"
CONFIG = EXAMPLE / "tiers.toml"


def test_tiers_check_accepts_the_example_but_for_its_unset_secret() -> None:
    result = tiers("check", "-c", str(CONFIG))
    # its secret has no value in the repository: scripts/demo sets one per tier
    assert result.returncode == 1, result.stdout + result.stderr
    for tier in ("staging", "production"):
        assert (
            f"error [secret-missing] {tier} needs OAUTH_ENCRYPTION_KEY but "
            f"secrets/{tier}.yaml does not exist: run `tiers secrets init {tier}`, then "
            f"`tiers secrets set {tier} OAUTH_ENCRYPTION_KEY`"
        ) in result.stdout
    # staging's gate is enforced here: the local platform runs it
    assert "access-not-enforced" not in result.stdout
    assert result.stdout.rstrip().endswith("2 findings (2 errors) in 3 environments")
    ignored = tiers("check", "-c", str(CONFIG), "--ignore", "secret-missing")
    assert ignored.returncode == 0, ignored.stdout + ignored.stderr


def test_three_local_tiers_in_promotion_order() -> None:
    config = load(CONFIG).config
    assert config.order == ["development", "staging", "production"]
    for env in config.environments.values():
        assert {b.platform for b in env.services.values()} == {"local"}
        assert env.database is not None
        assert env.database.engine == "postgresql"
    assert config.environments["staging"].access.protect


def test_development_keeps_the_seed_ports_and_every_port_is_its_own() -> None:
    config = load(CONFIG).config
    dev = config.environments["development"]
    assert dev.services["backend"].url == "http://localhost:8001"
    assert dev.services["frontend"].url == "http://localhost:5173"
    ports = [
        urlsplit(url).port
        for env in config.environments.values()
        for url in [
            *(b.url for b in env.services.values() if b.url),
            env.redis.url if env.redis else None,
            env.database.url if env.database else None,
        ]
        if url
    ]
    assert len(ports) == len(set(ports)) == 12


def test_commands_name_files_that_exist_in_the_service_directories() -> None:
    backend = load(CONFIG).config.services["backend"]
    assert backend.release_command == "python -m alembic upgrade head"
    assert (EXAMPLE / "backend" / "alembic.ini").is_file()
    assert {"app", "worker"} <= set(backend.processes)
    assert "plyr_backend.main:app" in backend.processes["app"]
    assert (EXAMPLE / "backend" / "src" / "plyr_backend" / "main.py").is_file()
    assert (EXAMPLE / "backend" / "src" / "plyr_backend" / "worker.py").is_file()
    frontend = load(CONFIG).config.services["frontend"]
    assert frontend.output is not None
    site = EXAMPLE / frontend.output
    assert {"index.html", "app.js", "style.css", "config.example.js"} <= {
        p.name for p in site.iterdir()
    }
    assert '<script src="config.js"></script>' in (site / "index.html").read_text()
