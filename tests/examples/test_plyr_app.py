"""The example project's backend, run as its process groups run: real uvicorn, a real
docket worker, real redis-server, and both SQLite and a real PostgreSQL database.

Skipped unless the example's dependencies (examples/plyr/backend/requirements.lock) are
installed in the interpreter running pytest; then PostgreSQL must answer on
127.0.0.1:5432 (or at PLYR_TEST_POSTGRES_URL) and redis-server must be installed.
"""

from __future__ import annotations

import ast
import io
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import wave
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import new_database

for _module in ("fastapi", "uvicorn", "docket", "alembic", "python_multipart", "httpx"):
    pytest.importorskip(_module)
psycopg = pytest.importorskip("psycopg")
sqlalchemy = pytest.importorskip("sqlalchemy", minversion="2")
httpx = pytest.importorskip("httpx")

BACKEND = Path(__file__).resolve().parents[2] / "examples" / "plyr" / "backend"
VERSIONS = BACKEND / "alembic" / "versions"
FRONTEND = "http://localhost:5174"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
WAIT = 30.0  # seconds: the bound on any wait for a process or the worker


# -- real servers --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """A redis-server of its own on a free port that keeps nothing on disk."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (Debian: apt-get install redis-server)")
    port = free_port()
    log = directory / "redis.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, *f"--port {port} --bind 127.0.0.1 --appendonly no --save".split(), ""],
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def answers() -> bool:
        assert process.poll() is None, f"redis-server exited: {log.read_text()}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    try:
        wait_for(answers, f"redis-server on port {port}")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(process)


@contextmanager
def database(kind: str, directory: Path) -> Iterator[str]:
    """A database of its own: a SQLite file, or a PostgreSQL database dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'plyr.db'}"
        return
    with new_database("plyr_test") as url:
        yield url


ENGINES = ["sqlite", "postgresql"]


@pytest.fixture(scope="module", params=ENGINES)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The database of the module's running backend."""
    with database(request.param, tmp_path_factory.mktemp(request.param)) as url:
        yield url


@pytest.fixture(params=ENGINES)
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database no other test touches."""
    with database(request.param, tmp_path) as url:
        yield url


def engine_for(url: str) -> Any:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)


# -- the backend's processes ---------------------------------------------------------------


@dataclass
class Backend:
    """The backend of one environment: its variables, buckets and processes."""

    root: Path
    database_url: str
    redis_url: str
    port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def audio(self) -> Path:
        return self.root / "audio-staging"

    @property
    def images(self) -> Path:
        return self.root / "images-staging"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, **changes: str | None) -> dict[str, str]:
        env = {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(BACKEND / "src"),
            "DATABASE_URL": self.database_url,
            "DOCKET_URL": self.redis_url,
            "FRONTEND_URL": FRONTEND,
            "ATPROTO_APP_NAMESPACE": "fm.plyr.stg",
            "STORAGE_DIR_AUDIO": str(self.audio),
            "STORAGE_DIR_IMAGES": str(self.images),
            "ATPROTO_CLIENT_ID": f"http://localhost:{self.port}/oauth-client-metadata.json",
            "ATPROTO_REDIRECT_URI": f"http://localhost:{self.port}/auth/callback",
            "LOGFIRE_ENVIRONMENT": "staging",
            "TIERS_ENVIRONMENT": "staging",
            "TIERS_VERSION": "2025.1125.120000",
            "TIERS_COMMIT": COMMIT,
            "OAUTH_ENCRYPTION_KEY": "a-key-of-this-tests-own-not-a-real-one",
            "PORT": str(self.port),
        }
        for name, value in changes.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def run(self, *args: str, **changes: str | None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            cwd=BACKEND,
            env=self.env(**changes),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def alembic(self, *args: str) -> str:
        result = self.run("-m", "alembic", *args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def start(self, name: str, *args: str, **changes: str | None) -> subprocess.Popen[bytes]:
        with (self.root / f"{name}.log").open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, *args],
                cwd=BACKEND,
                env=self.env(**changes),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def start_app(self, **changes: str | None) -> None:
        app = self.start(
            "app", "-m", "uvicorn", "plyr_backend.main:app", "--host", "127.0.0.1",
            "--port", str(self.port), **changes,
        )  # fmt: skip

        def healthy() -> bool:
            assert app.poll() is None, f"the app exited:\n{self.log('app')}"
            try:
                return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, f"the app's /health on port {self.port}")

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            stop(process)
        self.processes.clear()


@pytest.fixture(scope="module")
def backend(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """The app process of a migrated staging backend with its own Redis (the worker is
    started by the test that needs it)."""
    root = tmp_path_factory.mktemp("backend")
    with redis_server(root) as redis_url:
        backend = Backend(root, database_url, redis_url)
        backend.alembic("upgrade", "head")
        try:
            backend.start_app()
            yield backend
        finally:
            backend.stop_all()


@pytest.fixture
def db(database_url: str) -> Iterator[Any]:
    """The backend's database, as the test sees it."""
    engine = engine_for(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def client(backend: Backend) -> Iterator[Any]:
    with httpx.Client(base_url=backend.url, timeout=10) as client:
        yield client


# -- test data -----------------------------------------------------------------------------


def wav_bytes(seconds: float, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\x00\x00" * int(seconds * rate))
    return out.getvalue()


def png_bytes() -> bytes:
    """A 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x80\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def files_in(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()} if directory.exists() else set()


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize("process", ["app", "worker"])
@pytest.mark.parametrize(
    "missing", ["DATABASE_URL", "DOCKET_URL", "STORAGE_DIR_AUDIO", "OAUTH_ENCRYPTION_KEY"]
)
def test_a_missing_variable_stops_the_process_naming_it(
    tmp_path: Path, process: str, missing: str
) -> None:
    backend = Backend(tmp_path, "sqlite:///unused.db", "redis://127.0.0.1:1/0")
    args = {
        "app": ["-m", "uvicorn", "plyr_backend.main:app", "--port", str(backend.port)],
        "worker": ["-m", "plyr_backend.worker"],
    }[process]
    result = backend.run(*args, **{missing: None})
    assert result.returncode == 1
    assert f"plyr-backend: missing environment variable {missing} (" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("environment", ["staging", None])
def test_a_deployed_tier_without_its_encryption_key_stops_naming_the_command_that_sets_it(
    tmp_path: Path, environment: str | None
) -> None:
    backend = Backend(tmp_path, "sqlite:///unused.db", "redis://127.0.0.1:1/0")
    result = backend.run(
        "-m", "uvicorn", "plyr_backend.main:app", "--port", str(backend.port),
        OAUTH_ENCRYPTION_KEY=None, TIERS_ENVIRONMENT=environment,
    )  # fmt: skip
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    tier = environment or "ENV"
    assert line.startswith("plyr-backend: missing environment variable OAUTH_ENCRYPTION_KEY (")
    assert line.endswith(f"`tiers secrets generate {tier} OAUTH_ENCRYPTION_KEY --format fernet`)")


def test_development_may_go_without_the_encryption_key(backend: Backend) -> None:
    dev = Backend(backend.root / "dev", backend.database_url, backend.redis_url)
    dev.root.mkdir()
    try:
        dev.start_app(OAUTH_ENCRYPTION_KEY=None, TIERS_ENVIRONMENT="development")
        assert httpx.get(f"{dev.url}/health", timeout=5).json()["environment"] == "development"
    finally:
        dev.stop_all()


def test_migrations_without_database_url_say_so(tmp_path: Path) -> None:
    result = Backend(tmp_path, "", "").run("-m", "alembic", "upgrade", "head", DATABASE_URL=None)
    assert result.returncode == 1
    assert "alembic: missing environment variable DATABASE_URL" in result.stderr


# -- migrations ----------------------------------------------------------------------------


def markers(revision: str) -> tuple[set[str], set[str]]:
    """DROPS_COLUMNS and DROPS_TABLES of a revision file, read without importing it."""
    (path,) = VERSIONS.glob(f"{revision}_*.py")
    found: dict[str, set[str]] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            if isinstance(target, ast.Name) and target.id.startswith("DROPS_"):
                assert node.value is not None
                found[target.id] = set(ast.literal_eval(node.value))
    return found["DROPS_COLUMNS"], found["DROPS_TABLES"]


def schema(engine: Any) -> dict[str, set[str]]:
    inspector = sqlalchemy.inspect(engine)
    return {
        table: {column["name"] for column in inspector.get_columns(table)}
        for table in inspector.get_table_names()
        if table != "alembic_version"
    }


def test_upgrades_keep_rows_and_downgrades_drop_what_they_declare(
    tmp_path: Path, fresh_database_url: str
) -> None:
    backend = Backend(tmp_path, fresh_database_url, "redis://127.0.0.1:1/0")
    engine = engine_for(fresh_database_url)
    try:
        backend.alembic("upgrade", "0001")
        with engine.begin() as db:
            db.execute(
                sqlalchemy.text("INSERT INTO tracks (title, audio_key) VALUES ('old', 'a.wav')")
            )
        backend.alembic("upgrade", "0002")
        with engine.begin() as db:
            db.execute(sqlalchemy.text("UPDATE tracks SET image_key = 'a.png'"))
        backend.alembic("upgrade", "0003")  # adds a column to a table that holds rows
        with engine.begin() as db:
            row = db.execute(
                sqlalchemy.text("SELECT title, image_key, duration_seconds FROM tracks")
            ).one()
            assert tuple(row) == ("old", "a.png", None)
            db.execute(sqlalchemy.text("UPDATE tracks SET duration_seconds = 2.5"))
        assert "0003 (head)" in backend.alembic("current")

        for revision in ("0003", "0002", "0001"):
            drops_columns, drops_tables = markers(revision)
            before = schema(engine)
            backend.alembic("downgrade", "-1")
            after = schema(engine)
            assert set(before) - set(after) == drops_tables
            lost = {f"{t}.{c}" for t, cols in before.items() for c in cols - after.get(t, set())}
            assert lost == drops_columns | {f"{t}.{c}" for t in drops_tables for c in before[t]}
            if revision == "0003":
                with engine.connect() as db:  # the row survives, its duration does not
                    row = db.execute(sqlalchemy.text("SELECT title, image_key FROM tracks")).one()
                    assert tuple(row) == ("old", "a.png")
                backend.alembic("upgrade", "head")
                with engine.connect() as db:
                    lost_value = db.execute(sqlalchemy.text("SELECT duration_seconds FROM tracks"))
                    assert lost_value.scalar_one() is None
                backend.alembic("downgrade", "-1")
        assert schema(engine) == {}
        assert markers("0003") == ({"tracks.duration_seconds"}, set())
    finally:
        engine.dispose()


# -- the API -------------------------------------------------------------------------------


def test_health_reports_environment_release_and_migration_head(
    client: Any, database_url: str
) -> None:
    health = client.get("/health").json()
    assert health == {
        "status": "ok",
        "environment": "staging",
        "version": "2025.1125.120000",
        "commit": COMMIT,
        "migration_head": "0003",
        "namespace": "fm.plyr.stg",
        "database": database_url.split(":", 1)[0],
        "redis": "ok",
    }


def test_docs_and_openapi_are_served(client: Any) -> None:
    assert "swagger" in client.get("/docs").text.lower()
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/tracks", "/tracks/{track_id}/audio"} <= set(paths)


def test_cors_allows_only_this_environments_frontend(client: Any) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    ok = client.options("/tracks", headers={"Origin": FRONTEND, **preflight})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == FRONTEND
    assert ok.headers["access-control-allow-credentials"] == "true"
    for other in ("http://localhost:5173", "http://localhost:5175", "https://evil.example"):
        refused = client.options("/tracks", headers={"Origin": other, **preflight})
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        plain = client.get("/tracks", headers={"Origin": other})
        assert "access-control-allow-origin" not in plain.headers


def test_oauth_client_metadata_names_this_environments_client(
    client: Any, backend: Backend
) -> None:
    document = client.get("/oauth-client-metadata.json").json()
    assert document["client_id"] == backend.env()["ATPROTO_CLIENT_ID"]
    assert document["redirect_uris"] == [backend.env()["ATPROTO_REDIRECT_URI"]]


def test_what_is_not_a_wav_is_refused_and_nothing_is_stored(client: Any, backend: Backend) -> None:
    before = (files_in(backend.audio), files_in(backend.images), len(client.get("/tracks").json()))
    refused = client.post(
        "/tracks",
        data={"title": "nope"},
        files={"audio": ("x.wav", b"not audio at all", "audio/wav")},
    )
    assert refused.status_code == 422
    assert "WAV" in refused.json()["detail"]
    bad_cover = client.post(
        "/tracks",
        data={"title": "nope"},
        files={
            "audio": ("x.wav", wav_bytes(0.1), "audio/wav"),
            "image": ("c.png", b"GIF? no", "image/png"),
        },
    )
    assert bad_cover.status_code == 422
    after = (files_in(backend.audio), files_in(backend.images), len(client.get("/tracks").json()))
    assert after == before


def test_an_upload_lands_in_the_buckets_and_the_worker_measures_it(
    client: Any, backend: Backend, db: Any
) -> None:
    audio, cover = wav_bytes(2.5), png_bytes()
    response = client.post(
        "/tracks",
        data={"title": "First light"},
        files={"audio": ("first.wav", audio, "audio/wav"), "image": ("c.png", cover, "image/png")},
    )
    assert response.status_code == 201, response.text
    track = response.json()
    assert track["title"] == "First light"
    assert track["uri"] == f"at://fm.plyr.stg/track/{track['id']}"
    assert track["duration_seconds"] is None

    # The objects are in this environment's bucket directories, whole, under their keys.
    assert (backend.audio / track["audio_key"]).read_bytes() == audio
    assert (backend.images / track["image_key"]).read_bytes() == cover
    assert not [
        p for p in (*backend.audio.iterdir(), *backend.images.iterdir()) if p.name.startswith(".")
    ]
    with db.connect() as connection:
        row = connection.execute(
            sqlalchemy.text("SELECT title, audio_key, image_key FROM tracks WHERE id = :id"),
            {"id": track["id"]},
        ).one()
    assert tuple(row) == ("First light", track["audio_key"], track["image_key"])

    served = client.get(track["audio_url"])
    assert served.status_code == 200
    assert served.headers["content-type"] == "audio/wav"
    assert served.content == audio
    assert client.get(track["image_url"]).content == cover
    assert client.get("/tracks/999999/audio").status_code == 404

    # Nothing measures the track until the worker runs.
    time.sleep(0.5)
    assert by_id(client, track["id"])["duration_seconds"] is None
    # A track whose task was lost (the Redis keeps nothing): the worker finds it at start.
    (backend.audio / "lost.wav").write_bytes(wav_bytes(1.25))
    with db.begin() as connection:
        lost = connection.execute(
            sqlalchemy.text(
                "INSERT INTO tracks (title, audio_key) VALUES ('lost', 'lost.wav') RETURNING id"
            )
        ).scalar_one()
    worker = backend.start("worker", "-m", "plyr_backend.worker")
    try:

        def measured(track_id: int) -> float | None:
            assert worker.poll() is None, f"the worker exited:\n{backend.log('worker')}"
            return by_id(client, track_id)["duration_seconds"]  # type: ignore[no-any-return]

        assert wait_for(lambda: measured(track["id"]), "the worker to measure the track") == 2.5
        assert wait_for(lambda: measured(lost), "the worker to measure a lost track") == 1.25
        second = client.post(
            "/tracks",
            data={"title": "Second"},
            files={"audio": ("s.wav", wav_bytes(0.75), "audio/wav")},
        ).json()
        assert second["image_key"] is None
        assert wait_for(lambda: measured(second["id"]), "the worker to measure a new track") == 0.75
    finally:
        stop(worker)
    assert worker.returncode == 0, backend.log("worker")
    assert "worker stopped" in backend.log("worker")


def by_id(client: Any, track_id: int) -> dict[str, Any]:
    tracks = {t["id"]: t for t in client.get("/tracks").json()}
    return tracks[track_id]  # type: ignore[no-any-return]
