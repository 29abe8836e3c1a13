"""The ``worker`` process: ``python -m plyr_backend.worker`` runs docket tasks from DOCKET_URL.

At start it also enqueues every track still without a duration, since a task in flight
is lost with a Redis that keeps nothing on disk. SIGTERM or SIGINT stops it cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from docket import Docket, Worker

from plyr_backend import DOCKET_NAME, logs
from plyr_backend.db import make_engine
from plyr_backend.settings import Settings, load
from plyr_backend.storage import Bucket
from plyr_backend.tasks import duration_task, enqueue_duration, unmeasured

log = logging.getLogger("plyr_backend.worker")


async def run(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    audio = Bucket(settings.audio_dir)
    audio.ensure()
    task = duration_task(engine, audio)
    try:
        async with Docket(name=DOCKET_NAME, url=settings.docket_url) as docket:
            docket.register(task)
            for track_id, audio_key in await asyncio.to_thread(unmeasured, engine):
                await enqueue_duration(docket, task, track_id, audio_key)
            async with Worker(docket, concurrency=4) as worker:
                log.info("worker %s ready on docket %s", worker.name, DOCKET_NAME)
                await worker.run_forever()
    finally:
        engine.dispose()


async def _until_signalled(settings: Settings) -> None:
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, main.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await run(settings)
    log.info("worker stopped")


def main() -> None:
    settings = load()
    logs.configure(settings, "worker")
    asyncio.run(_until_signalled(settings))


if __name__ == "__main__":
    main()
