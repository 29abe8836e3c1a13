"""Generate a clean tiers.toml with N environments (for benchmarks and scale tests)."""

from __future__ import annotations

SECRETS = '["DATABASE_URL", "OAUTH_ENCRYPTION_KEY", "LOGFIRE_WRITE_TOKEN"]'


def config_text(count: int, share_database_every: int = 0) -> str:
    """A valid config: env0 local, then push-triggered tiers, the last one released.

    With ``share_database_every=k``, environment ``i`` (``i % k == 1``, ``i > 1``) reuses
    the database of environment ``i - 1``: a known number of findings.
    """
    parts = [
        '[project]\nname = "big"\ndomain = "example.com"\n',
        '[services.api]\nkind = "api"\nrelease_command = "alembic upgrade head"\n',
        '[services.web]\nkind = "frontend"\nbuild = "npm run build"\noutput = "dist"\n',
    ]
    for i in range(count):
        parts.append(_environment(i, count, share_database_every))
    return "\n".join(parts)


def _environment(i: int, count: int, share: int) -> str:
    name = f"env{i:02d}"
    last = i == count - 1
    db = f"env{i - 1:02d}" if share and i > 1 and i % share == 1 else name
    if i == 0:
        trigger, api, web = '"local"', f"http://localhost:{8000 + i}", "http://localhost:5173"
    else:
        branch = "main" if i == count - 2 else f"branch-{i}"
        trigger = '{ release = "github" }' if last else f'{{ push = "{branch}" }}'
        api, web = f"https://api-{name}.example.com", f"https://{name}.example.com"
    text = f"""
[environments.{name}]
trigger = {trigger}
namespace = "com.example.{name}"
cookie_auth = true
cookie_name = "__Host-session_{name}"
database = {{ provider = "neon", name = "{db}", url_secret = "DATABASE_URL" }}
redis = {{ provider = "fly", name = "redis-{name}", url = "redis://redis-{name}.internal:6379" }}
storage = {{ provider = "r2", buckets = {{ audio = "audio-{name}", images = "images-{name}" }} }}

[environments.{name}.api]
platform = "{"local" if i == 0 else "fly"}"
url = "{api}"
frontend_url = "${{environments.{name}.web.url}}"
secrets = {SECRETS if i else "[]"}

[environments.{name}.web]
platform = "{"local" if i == 0 else "cloudflare-pages"}"
url = "{web}"
api_url = "${{environments.{name}.api.url}}"
"""
    if i:
        text += f'project = "web-{name}"\nbranch = "{"production" if last else f"web-{i}"}"\n'
        text += f"""
[environments.{name}.api.cost]
usd = 5
"""
        text += f"""
[environments.{name}.access]
protect = {"false" if last else "true"}
provider = "cloudflare"
login = ["github"]
allow = ["github-org:example"]
bypass = {"[]" if last else f'["api-{name}.example.com/health"]'}
"""
        text += f"""
[environments.{name}.oauth]
client_id = "{api}/oauth-client-metadata.json"
redirect_uri = "{api}/auth/callback"
"""
    return text
