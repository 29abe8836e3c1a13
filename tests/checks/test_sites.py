from __future__ import annotations

import pytest

from tiers.checks import site
from tiers.checks.sites import is_private_host


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("api-stg.plyr.fm", "plyr.fm"),
        ("plyr.fm", "plyr.fm"),
        ("a.github.io", "a.github.io"),
        ("b.github.io", "b.github.io"),
        ("relay-api-staging.fly.dev", "relay-api-staging.fly.dev"),
        ("plyr-fm-stg.pages.dev", "plyr-fm-stg.pages.dev"),
        ("www.example.co.uk", "example.co.uk"),
        ("localhost:8001", "localhost"),
        ("127.0.0.1:5173", "127.0.0.1"),
    ],
)
def test_site_is_the_registrable_domain(host: str, expected: str) -> None:
    assert site(host) == expected


def test_platform_hosts_never_share_a_site_with_the_custom_domain() -> None:
    assert site("relay-api.fly.dev") != site("plyr.fm")
    assert site("a.github.io") != site("b.github.io")


@pytest.mark.parametrize(
    ("host", "private"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("192.168.0.4", True),
        ("plyr-redis.internal", True),
        ("redis", True),
        ("fdaa::3", True),
        ("plyr-redis.upstash.io", False),
        ("8.8.8.8", False),
    ],
)
def test_private_hosts(host: str, private: bool) -> None:
    assert is_private_host(host) is private
