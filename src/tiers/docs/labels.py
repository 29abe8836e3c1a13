"""How names from tiers.toml read in prose: provider labels and platform commands."""

from __future__ import annotations

from tiers.config import Binding

_PROVIDERS = {"fly": "fly.io", "cloudflare-pages": "cloudflare pages"}
_NOUNS = {
    "fly": "app",
    "kubernetes": "deployment",
    "heroku": "app",
    "render": "service",
    "railway": "service",
}
_LOGS = {
    "fly": "flyctl logs -a {name}",
    "heroku": "heroku logs --tail -a {name}",
    "kubernetes": "kubectl logs deployment/{name}",
}
_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def provider(name: str) -> str:
    """The label a provider or platform goes by in prose; others read as written.

    >>> provider("fly"), provider("neon")
    ('fly.io', 'neon')
    """
    return _PROVIDERS.get(name, name)


def noun(binding: Binding) -> str:
    """What the platform calls the thing a binding names: an app, a project, a deployment.

    >>> noun(Binding(platform="cloudflare-pages", project="plyr-fm"))
    'project'
    """
    if binding.option("project"):
        return "project"
    return _NOUNS.get(binding.platform, "app")


def logs_command(binding: Binding) -> str | None:
    """The command that tails a deployed app's logs, when the platform has one.

    >>> logs_command(Binding(platform="fly", app="relay-api"))
    'flyctl logs -a relay-api'
    """
    pattern = _LOGS.get(binding.platform)
    return pattern.format(name=binding.resource) if pattern and binding.resource else None


def count(number: int) -> str:
    """Small counts as words, as prose writes them.

    >>> count(3), count(12)
    ('three', '12')
    """
    return _WORDS[number] if 0 <= number < len(_WORDS) else str(number)
