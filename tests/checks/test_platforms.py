"""A service bound to a platform tiers cannot drive from here is a finding, and the
document says so next to it: nothing claims a deploy tiers cannot make."""

from __future__ import annotations

from pathlib import Path

from tests.config.test_options import install
from tests.conftest import tiers
from tests.docs.conftest import FOUR
from tiers.checks import run
from tiers.config import load

EXAMPLE = Path(__file__).parents[2] / "examples" / "plyr" / "tiers.toml"

DRIVERS = """
from tiers.platforms.base import Platform
from tiers.platforms.options import CloudflarePages, Fly


class FlyDriver(Platform):
    name = "fly"
    options = Fly


class PagesDriver(Platform):
    name = "cloudflare-pages"
    options = CloudflarePages
"""


def test_each_binding_on_a_platform_not_installed_is_a_warning(plyr: Path) -> None:
    findings = [f for f in run(*load(plyr)) if f.rule == "platform-not-installed"]
    assert [(f.severity, f.key, f.message) for f in findings] == [
        (
            "warning",
            f"environments.{env}.{service}.platform",
            f"{env} {service} runs on {platform}, which tiers cannot deploy from here: "
            f"no {platform!r} platform is installed",
        )
        for env in ("staging", "production")
        for service, platform in (("backend", "fly"), ("frontend", "cloudflare-pages"))
    ]
    assert (
        findings[0].line
        == plyr.read_text().splitlines().index("[environments.staging.backend]") + 2
    )


def test_the_local_platform_is_always_installed() -> None:
    assert [f for f in run(*load(EXAMPLE)) if f.rule == "platform-not-installed"] == []


def test_installed_drivers_clear_the_warning_and_the_note(plyr: Path, tmp_path: Path) -> None:
    note = "(tiers cannot deploy it from here: no `{}` platform is installed):"
    docs = tiers("docs").stdout
    staging = docs[docs.index("### staging deployment") : docs.index("### production deployment")]
    assert (
        f"**backend** {note.format('fly')}\n1. deploys to fly.io app `relay-api-staging`" in staging
    )
    assert f"**frontend** {note.format('cloudflare-pages')}\n1." in staging
    assert docs.count("tiers cannot deploy it from here") == 4

    env = install(
        tmp_path / "site",
        "tiers_drivers",
        DRIVERS,
        **{"fly": "FlyDriver", "cloudflare-pages": "PagesDriver"},
    )
    # the seed's secrets live in no store here: test_store.py
    result = tiers("check", "--ignore", "secret-missing", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("no findings in 3 environments")
    assert "cannot deploy" not in tiers("docs", env=env).stdout


def test_two_environments_on_one_kubernetes_deployment_share_it() -> None:
    four = Path("tiers.toml")
    text = FOUR.replace('namespace = "shop-stg"\n', 'namespace = "shop"\n', 1)
    four.write_text(text)
    shared = [f for f in run(*load(four)) if f.rule == "shared-app"]
    assert [(f.key, f.message) for f in shared] == [
        (
            "environments.production.api.deployment",
            "staging and production share the app shop/shop-api (kubernetes, the current context)",
        )
    ]
    four.write_text(text.replace('namespace = "shop"\n', 'namespace = "shop"\ncontext = "eu"\n', 1))
    assert [f for f in run(*load(four)) if f.rule == "shared-app"] == []
