"""The ASGI app of the ``app`` process: ``uvicorn plyr_backend.main:app --port $PORT``."""

from plyr_backend import logs
from plyr_backend.access import guarded
from plyr_backend.api import create_app
from plyr_backend.settings import load

settings = load()
logs.configure(settings, "app")
app = guarded(create_app(settings))  # a protected tier: only what its gate let through
