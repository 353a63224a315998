"""Private PostgreSQL and Redis servers for fault drills, on free loopback ports.

Fault drills stop and restart services on purpose; they must never touch the
machine's shared PostgreSQL (5432) or Redis (6379). These helpers start a
throwaway instance in a temporary directory and always clean it up:

    with private_redis() as redis_server:       # redis_server.url, .restart()
        ...
    with private_postgres() as pg:              # pg.url("dbname"), .stop(), .start()
        ...

A missing binary raises ``ServiceUnavailable``; tests turn that into a skip,
or a failure under REQUIRE_SERVICES=1, with ``tests.conftest.require_service``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PrivatePostgres", "PrivateRedis", "ServiceUnavailable", "private_postgres", "private_redis"]


class ServiceUnavailable(RuntimeError):
    """The binaries (or user) a private instance needs are missing here."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _wait(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout} s")
        time.sleep(0.05)


# --- Redis ---------------------------------------------------------------------


@dataclass
class PrivateRedis:
    port: int
    directory: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceUnavailable("redis-server is not installed (Debian package redis-server)")
        log = (self.directory / "redis.log").open("a")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.directory,
        )  # fmt: skip
        _wait(lambda: _port_open(self.port), f"Redis did not listen on {self.port}", timeout=15)

    def stop(self) -> None:
        """Kill it (nothing is saved): every client connection drops at once."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None
        _wait(lambda: not _port_open(self.port), "Redis did not stop", timeout=10)

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    with tempfile.TemporaryDirectory(prefix="fault-redis-") as directory:
        server = PrivateRedis(port=free_port(), directory=Path(directory))
        try:
            server.start()
            yield server
        finally:
            server.stop()


# --- PostgreSQL ----------------------------------------------------------------


def postgres_bin_dir() -> Path:
    """The newest installed server's bin directory (found at run time, any version)."""
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not candidates and shutil.which("initdb"):
        candidates = [shutil.which("initdb")]
    if not candidates:
        raise ServiceUnavailable(
            "no PostgreSQL server binaries (initdb) found; install the postgresql package"
        )

    def version(path: str) -> tuple[int, ...]:
        part = Path(path).parent.parent.name
        return tuple(int(p) for p in part.split(".") if p.isdigit()) or (0,)

    return Path(max(candidates, key=version)).parent


@dataclass
class PrivatePostgres:
    port: int
    directory: Path
    bin_dir: Path
    run_as: str | None = None  # initdb refuses root: run the server as this user
    env: dict[str, str] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, env=self.env
        )
        if done.returncode:
            raise RuntimeError(
                f"{args[0]} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )

    def init(self) -> None:
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.directory / "postgres.log"),
                  "-o", options, "-w", "-t", "30", "start")  # fmt: skip

    def stop(self, mode: str = "immediate") -> None:
        """``immediate`` drops every connection at once, as a crash or a restart does."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "30", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def create_database(self, name: str) -> None:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    bin_dir = postgres_bin_dir()
    run_as = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise ServiceUnavailable("running as root and there is no 'postgres' user for initdb") from None
        if shutil.which("runuser") is None:
            raise ServiceUnavailable("running as root and runuser is missing (util-linux)")
        run_as = "postgres"
    directory = Path(tempfile.mkdtemp(prefix="fault-pg-"))
    if run_as:
        user = pwd.getpwnam(run_as)
        os.chown(directory, user.pw_uid, user.pw_gid)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
    server = PrivatePostgres(port=free_port(), directory=directory, bin_dir=bin_dir, run_as=run_as, env=env)
    started = False
    try:
        server.init()
        server.start()
        started = True
        yield server
    finally:
        if started:
            with contextlib.suppress(Exception):
                server.stop()
        shutil.rmtree(directory, ignore_errors=True)
