"""Background tasks, run by the worker through docket: a track's duration after upload.

The API and the worker both build the task with :func:`duration_task` and register it
under the same name; docket sends only the name and the arguments through Redis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from docket import Docket, Retry
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from plyr_backend.audio import wav_duration
from plyr_backend.db import Track
from plyr_backend.storage import Bucket

log = logging.getLogger("plyr_backend.tasks")

DurationTask = Callable[..., Awaitable[None]]

# A file that cannot be read now (a slow disk, a database restarting) gets two more tries.
RETRY = Retry(attempts=3, delay=timedelta(seconds=1))


def duration_task(engine: Engine, audio: Bucket) -> DurationTask:
    """The ``compute_duration(track_id)`` task, bound to a database and an audio bucket."""

    async def compute_duration(track_id: int, retry: Retry = RETRY) -> None:
        await asyncio.to_thread(_compute, engine, audio, track_id)

    return compute_duration


def _compute(engine: Engine, audio: Bucket, track_id: int) -> None:
    with Session(engine) as session:
        track = session.get(Track, track_id)
        if track is None:
            log.warning("track %s is gone; nothing to measure", track_id)
            return
        path = audio.path(track.audio_key)
        if not path.exists():
            log.warning("track %s: audio %s is missing from the bucket", track_id, track.audio_key)
            return
        try:
            seconds = wav_duration(path)
        except ValueError as exc:
            log.warning("track %s: %s", track_id, exc)
            return
        track.duration_seconds = round(seconds, 3)
        session.commit()
        log.info("track %s lasts %.3f s", track_id, seconds)


async def enqueue_duration(
    docket: Docket, task: DurationTask, track_id: int, audio_key: str
) -> None:
    # Keyed by the audio object, so enqueuing the same track twice runs it once.
    await docket.add(task, key=f"duration:{audio_key}")(track_id)


def unmeasured(engine: Engine) -> list[tuple[int, str]]:
    """Tracks still without a duration (their task was lost with a Redis that keeps nothing)."""
    query = select(Track.id, Track.audio_key).where(Track.duration_seconds.is_(None))
    with Session(engine) as session:
        return [(row.id, row.audio_key) for row in session.execute(query)]
