"""The HTTP API: tracks with an audio file and an optional cover, /health and /docs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from docket import Docket
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from plyr_backend import DOCKET_NAME
from plyr_backend.audio import looks_like_wav
from plyr_backend.db import Track, make_engine, migration_head
from plyr_backend.settings import Settings
from plyr_backend.storage import Bucket, TooLarge
from plyr_backend.tasks import DurationTask, duration_task, enqueue_duration

log = logging.getLogger("plyr_backend.api")

MAX_AUDIO_BYTES = 200 * 1024 * 1024
MAX_IMAGE_BYTES = 10 * 1024 * 1024
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}


@dataclass
class State:
    settings: Settings
    engine: Engine
    audio: Bucket
    images: Bucket
    task: DurationTask
    docket: Docket | None = None


class TrackOut(BaseModel):
    id: int
    title: str
    uri: str
    """The track's record in this environment's namespace: at://NAMESPACE/track/ID."""
    duration_seconds: float | None
    audio_key: str
    image_key: str | None
    audio_url: str
    image_url: str | None
    created_at: datetime | None


def create_app(settings: Settings) -> FastAPI:
    engine = make_engine(settings.database_url)
    audio, images = Bucket(settings.audio_dir), Bucket(settings.images_dir)
    state = State(settings, engine, audio, images, duration_task(engine, audio))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        audio.ensure()
        images.ensure()
        try:
            async with Docket(name=DOCKET_NAME, url=settings.docket_url) as docket:
                docket.register(state.task)
                state.docket = docket
                yield
        finally:
            state.docket = None
            engine.dispose()

    app = FastAPI(title="plyr", version=settings.version or "dev", lifespan=lifespan)
    app.state.plyr = state
    app.add_middleware(
        CORSMiddleware,
        allow_origins=[settings.frontend_url],
        allow_credentials=True,
        allow_methods=["GET", "POST"],
        allow_headers=["*"],
    )
    app.add_api_route("/health", health, methods=["GET"])
    app.add_api_route("/tracks", list_tracks, methods=["GET"])
    app.add_api_route("/tracks", upload_track, methods=["POST"], status_code=201)
    app.add_api_route("/tracks/{track_id}/audio", track_audio, methods=["GET"])
    app.add_api_route("/tracks/{track_id}/image", track_image, methods=["GET"])
    app.add_api_route("/oauth-client-metadata.json", oauth_client_metadata, methods=["GET"])
    return app


def _state(request: Request) -> State:
    return request.app.state.plyr  # type: ignore[no-any-return]


async def health(request: Request) -> JSONResponse:
    """Which environment, release and schema revision this process serves."""
    state = _state(request)
    settings = state.settings
    body: dict[str, Any] = {
        "status": "ok",
        "environment": settings.environment,
        "version": settings.version,
        "commit": settings.commit,
        "migration_head": None,
        "namespace": settings.namespace,
        "database": state.engine.dialect.name,
        "redis": await _redis_status(state.docket),
    }
    try:
        body["migration_head"] = await run_in_threadpool(migration_head, state.engine)
    except SQLAlchemyError as exc:
        # One line per failed check: the driver's message names host and port, never a password.
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        log.warning("health: the database is unreachable: %s", reason)
        return JSONResponse({**body, "status": "error", "detail": "database unreachable"}, 503)
    return JSONResponse(body)


async def list_tracks(request: Request) -> list[TrackOut]:
    state = _state(request)

    def load() -> list[Track]:
        with Session(state.engine) as session:
            return list(session.scalars(select(Track).order_by(Track.id.desc())))

    return [_out(state, track) for track in await run_in_threadpool(load)]


async def upload_track(
    request: Request,
    title: Annotated[str, Form(min_length=1, max_length=200)],
    audio: Annotated[UploadFile, File(description="a WAV file")],
    image: Annotated[UploadFile | None, File(description="a cover: PNG, JPEG, GIF or WebP")] = None,
) -> TrackOut:
    """Store the audio in the audio bucket and the cover in the images bucket, add the
    track, and ask the worker for its duration."""
    state = _state(request)
    title = title.strip()
    if not title:
        raise HTTPException(422, "the title is empty")
    if not looks_like_wav(await audio.read(12)):
        raise HTTPException(422, "audio must be a WAV file (RIFF/WAVE)")
    await audio.seek(0)
    cover = None
    if image is not None and image.filename:
        cover = _image_suffix(await image.read(12))
        if cover is None:
            raise HTTPException(422, "image must be a PNG, JPEG, GIF or WebP file")
        await image.seek(0)

    keys: list[tuple[Bucket, str]] = []
    try:
        audio_key = await _put(state.audio, audio, ".wav", MAX_AUDIO_BYTES)
        keys.append((state.audio, audio_key))
        image_key = None
        if image is not None and cover is not None:
            image_key = await _put(state.images, image, cover, MAX_IMAGE_BYTES)
            keys.append((state.images, image_key))
        track = await run_in_threadpool(_insert, state.engine, title, audio_key, image_key)
    except BaseException:
        for bucket, key in keys:
            bucket.delete(key)
        raise

    try:
        if state.docket is None:
            raise RuntimeError("the docket is not open")
        await enqueue_duration(state.docket, state.task, track.id, audio_key)
    except Exception as exc:
        # The track is stored; the worker enqueues unmeasured tracks when it starts.
        log.warning("track %s: could not enqueue its duration task: %r", track.id, exc)
    return _out(state, track)


async def track_audio(request: Request, track_id: int) -> FileResponse:
    track = await _track(request, track_id)
    return _file(_state(request).audio, track.audio_key, "audio/wav")


async def track_image(request: Request, track_id: int) -> FileResponse:
    track = await _track(request, track_id)
    if track.image_key is None:
        raise HTTPException(404, f"track {track_id} has no image")
    suffix = track.image_key[track.image_key.rfind(".") :]
    return _file(_state(request).images, track.image_key, IMAGE_TYPES.get(suffix, "image/*"))


async def oauth_client_metadata(request: Request) -> dict[str, Any]:
    """The atproto OAuth client metadata document of this environment's client."""
    settings = _state(request).settings
    if not (settings.oauth_client_id and settings.oauth_redirect_uri):
        raise HTTPException(404, "no OAuth client is configured in this environment")
    return {
        "client_id": settings.oauth_client_id,
        "client_name": f"plyr ({settings.environment or 'local'})",
        "application_type": "web",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "redirect_uris": [settings.oauth_redirect_uri],
        "scope": "atproto transition:generic",
        "token_endpoint_auth_method": "none",
        "dpop_bound_access_tokens": True,
    }


# -- helpers -------------------------------------------------------------------------------


def _out(state: State, track: Track) -> TrackOut:
    created = track.created_at
    if created is not None and created.tzinfo is None:
        created = created.replace(tzinfo=UTC)  # SQLite's CURRENT_TIMESTAMP is UTC
    return TrackOut(
        id=track.id,
        title=track.title,
        uri=f"at://{state.settings.namespace}/track/{track.id}",
        duration_seconds=track.duration_seconds,
        audio_key=track.audio_key,
        image_key=track.image_key,
        audio_url=f"/tracks/{track.id}/audio",
        image_url=f"/tracks/{track.id}/image" if track.image_key else None,
        created_at=created,
    )


def _insert(engine: Engine, title: str, audio_key: str, image_key: str | None) -> Track:
    with Session(engine, expire_on_commit=False) as session:
        track = Track(title=title, audio_key=audio_key, image_key=image_key)
        session.add(track)
        session.commit()
        session.refresh(track)
        return track


async def _put(bucket: Bucket, upload: UploadFile, suffix: str, limit: int) -> str:
    try:
        return await run_in_threadpool(bucket.put, upload.file, suffix, limit)
    except TooLarge as exc:
        raise HTTPException(413, f"{upload.filename or 'upload'} is {exc}") from None


async def _track(request: Request, track_id: int) -> Track:
    def load() -> Track | None:
        with Session(_state(request).engine) as session:
            return session.get(Track, track_id)

    track = await run_in_threadpool(load)
    if track is None:
        raise HTTPException(404, f"no track {track_id}")
    return track


def _file(bucket: Bucket, key: str, media_type: str) -> FileResponse:
    path = bucket.path(key)
    if not path.is_file():
        raise HTTPException(404, f"{key} is missing from its bucket")
    return FileResponse(path, media_type=media_type)


async def _redis_status(docket: Docket | None) -> str:
    # Reported, not fatal: uploads still work without Redis and are measured later.
    if docket is None:
        return "not connected"
    try:
        async with docket.redis() as redis:
            # Any round trip will do; EXISTS is in the client surface docket publishes.
            await asyncio.wait_for(redis.exists(docket.key("health")), timeout=2)
    except Exception:
        return "unreachable"
    return "ok"


def _image_suffix(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if head.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return ".gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    return None
