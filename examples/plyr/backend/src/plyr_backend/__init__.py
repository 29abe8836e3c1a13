"""plyr's backend: tracks with audio uploads, a health endpoint and a duration worker."""

DOCKET_NAME = "plyr"
"""The docket both the API (which adds tasks) and the worker (which runs them) use."""

__all__ = ["DOCKET_NAME"]
