"""Files for a CI service, generated from tiers.toml: deploy each environment on its trigger.

The workflows only say *when* to deploy; ``tiers on-push`` and ``tiers on-release`` decide
*what*, so the files change only when tiers.toml does.

>>> from tiers.ci import github
>>> sorted(github.workflows(config))                       # doctest: +SKIP
['.github/workflows/deploy-production.yml', '.github/workflows/deploy-staging.yml']
"""

from tiers.ci import github

__all__ = ["github"]
