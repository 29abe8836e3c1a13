"""A second setup beside the plyr example: four tiers, two frontends, a manual tier."""

from __future__ import annotations

from pathlib import Path

import pytest

FOUR = """
[project]
name = "shop"
domain = "shop.dev"

[project.release]
tag_prefix = "v"

[services.api]
kind = "api"
release_command = "python manage.py migrate"
docs = "/docs"
processes = { web = "python manage.py runserver $PORT" }
vars = { database_url = "DATABASE_URL", namespace = "APP_NAMESPACE" }

[services.web]
kind = "frontend"
build = "npm run build"
vars = { api_url = "API_URL" }

[services.admin]
kind = "frontend"
build = "npm run build:admin"

[services.jobs]
kind = "worker"
processes = { jobs = "python -m jobs" }
optional = true

[environments.development]
trigger = "local"
namespace = "dev.shop"
database = { provider = "sqlite", name = "shop-dev", engine = "sqlite", url = "sqlite:///dev.db" }

[environments.development.api]
platform = "local"
url = "http://localhost:8000"

[environments.development.web]
platform = "local"
url = "http://localhost:3000"
api_url = "http://localhost:8000"

[environments.development.jobs]
platform = "local"

[environments.preview]
trigger = "manual"
namespace = "preview.shop"
database = { provider = "neon", name = "shop-preview", url_secret = "DATABASE_URL" }

[environments.preview.api]
platform = "fly"
app = "shop-api-preview"
url = "https://api-preview.shop.dev"
secrets = ["DATABASE_URL"]

[environments.staging]
trigger = { push = "main" }
namespace = "stg.shop"
cookie_auth = true
database = { provider = "neon", name = "shop-stg", url_secret = "DATABASE_URL", cost = 3 }

[environments.staging.api]
platform = "kubernetes"
namespace = "shop-stg"
deployment = "shop-api"
url = "https://api-stg.shop.dev"
secrets = ["DATABASE_URL"]

[environments.staging.web]
platform = "cloudflare-pages"
project = "shop-stg"
branch = "main"
url = "https://stg.shop.dev"
api_url = "https://api-stg.shop.dev"

[environments.staging.admin]
platform = "cloudflare-pages"
project = "shop-admin-stg"
branch = "main"
url = "https://admin-stg.shop.dev"
cost = { usd = [1.5, 2.5], label = "admin pages (staging)" }

[environments.staging.access]
protect = true
provider = "tiers"
login = ["google"]
allow = ["email:ops@shop.dev", "login:google"]
bypass = ["api-stg.shop.dev/docs"]

[environments.production]
trigger = { release = "tag" }
namespace = "shop"
database = { provider = "neon", name = "shop-prd", url_secret = "DATABASE_URL" }

[environments.production.api]
platform = "kubernetes"
namespace = "shop"
deployment = "shop-api"
replicas = 3
url = "https://api.shop.dev"
env = { LOG_LEVEL = "warning" }
secrets = ["DATABASE_URL"]
cost = [7, 7]

[environments.production.web]
platform = "cloudflare-pages"
project = "shop"
branch = "live"
url = "https://shop.dev"
api_url = "https://api.shop.dev"
"""


@pytest.fixture
def four(tmp_path: Path) -> Path:
    """A tiers.toml with four environments, a second frontend and a manual tier."""
    path = tmp_path / "tiers.toml"
    path.write_text(FOUR.lstrip())
    return path
