"""Fixtures for the fault tests: a database ready for real traffic, a PostgreSQL cluster of our own to stop
and start, and file-system faults (a full tmpfs, a read-only bind mount).

Why a cluster of our own: stopping the suite's shared server (``scripts/test-postgres.sh``, port 55432) would
break every other test running against it. Why mounts: the tests may run as root (CI does), and root ignores
``chmod``; a full tmpfs and a read-only mount refuse root as they would refuse anyone. Where mounting is not
allowed the tests that need it are skipped, except the read-only ones as a non-root user, where ``chmod``
denies honestly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from engine.clock import SystemClock
from engine.process_engine import ProcessEngine
from tests.web.intake_support import CASE_FIELDS, ensure_deployed, new_api_client

from .procs import WebServer, request

DIAGRAMS = Path(__file__).parent / "diagrams"


@dataclass
class Site:
    """One database with what a deployment serves: reference data, the Fenghua process, a short-timer test
    process, an intake API client; plus the environment the ``qifu`` processes run with."""

    url: str
    engine: ProcessEngine
    token: str
    env: dict[str, str]
    log_dir: Path
    sent: list[str] = field(default_factory=list)

    def web(self, user: list[str] | None = None) -> WebServer:
        return WebServer(self.env, self.log_dir, user)

    def submit(self, server: WebServer, key: str, timeout: float = 30):
        """One intake through the API, as an online channel sends it (retries reuse the key)."""
        if key not in self.sent:
            self.sent.append(key)
        return request("POST", f"{server.base}/api/v1/cases", CASE_FIELDS,
                       {"Authorization": f"Bearer {self.token}", "Idempotency-Key": key}, timeout=timeout)


def make_site(url: str, work: Path) -> Site:
    import handlers
    from engine.services import ServiceRegistry
    from handlers import reference

    registry = ServiceRegistry()
    handlers.register(registry)
    engine = ProcessEngine(url, SystemClock(), registry)
    with engine.session() as session:
        reference.load_reference(session)
    ensure_deployed(engine, "fenghua_one_place")
    engine.deploy((DIAGRAMS / "fault_timer.bpmn").read_bytes(), filename="fault_timer.bpmn", actor="test")
    token = new_api_client(engine)
    var = work / "var"
    var.mkdir(parents=True, exist_ok=True)
    log_dir = work / "logs"
    log_dir.mkdir(exist_ok=True)
    env = {"QIFU_DATABASE_URL": url, "QIFU_VAR_DIR": str(var), "QIFU_SECRET_KEY": "fault-test-secret",
           "QIFU_API_RATE_LIMIT": "100000"}
    return Site(url, engine, token, env, log_dir)


@pytest.fixture
def site(db_url: str, tmp_path: Path) -> Site:
    return make_site(db_url, tmp_path)


# --- a PostgreSQL cluster of our own ---------------------------------------------------------------------
def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


class Cluster:
    """A throwaway PostgreSQL cluster on a port of its own, to stop and start under load."""

    def __init__(self, bin_dir: Path, root: Path, port: int) -> None:
        self.bin, self.root, self.port = bin_dir, root, port
        self.data = root / "data"
        self.admin_url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb and postgres refuse root
            argv = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

    def init(self) -> None:
        done = self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                         "--locale=C.UTF-8")
        assert done.returncode == 0, done.stderr

    def start(self) -> None:
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c max_connections=100")
        done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-o", opts, "start")
        assert done.returncode == 0, done.stdout + done.stderr + (self.root / "log").read_text()[-2000:]

    def stop(self, mode: str = "fast") -> None:
        """``immediate``: every backend is killed mid-transaction, as in a crash (recovery runs at start)."""
        done = self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        assert done.returncode == 0, done.stdout + done.stderr

    def database(self, name: str) -> str:
        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def own_pg() -> Iterator[Cluster]:
    bin_dir = _pg_bin()
    if bin_dir is None:
        if os.environ.get("QIFU_REQUIRE_PG"):
            pytest.fail("QIFU_REQUIRE_PG is set but no PostgreSQL binaries are installed")
        pytest.skip("PostgreSQL binaries (/usr/lib/postgresql/*/bin) not installed")
    from .procs import free_port

    root = Path(tempfile.mkdtemp(prefix="qifu-fault-pg-"))
    os.chmod(root, 0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cluster = Cluster(bin_dir, root, free_port())
    cluster.init()
    cluster.start()
    try:
        yield cluster
    finally:
        try:
            cluster.stop("immediate")
        except AssertionError:
            pass  # already stopped
        shutil.rmtree(root, ignore_errors=True)


# --- file-system faults -----------------------------------------------------------------------------------
_MOUNT_OK: list[bool] = []


def can_mount() -> bool:
    """Whether this process may mount (root with CAP_SYS_ADMIN): tried once with a tiny tmpfs."""
    if not _MOUNT_OK:
        probe = Path(tempfile.mkdtemp(prefix="qifu-mount-probe-"))
        ok = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                                                  capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", str(probe)], check=True)
        probe.rmdir()
        _MOUNT_OK.append(ok)
    return _MOUNT_OK[0]


def _umount(path: Path) -> None:
    for _ in range(50):
        if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "-l", str(path)], check=True)  # still busy: detach it, it goes with its users


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``path`` (a disk that can really fill up, also for root)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        _umount(path)


class ReadOnly:
    """``path`` (a file or a directory) made read-only for the server, and writable again, while it runs.

    As root: a read-only bind mount over it (EROFS for everyone, as a volume mounted read-only); removing
    the mount gives the writable original back. Otherwise: ``chmod`` (a file the server's user may not write).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mounted = False
        self.modes: dict[Path, int] = {}

    def on(self) -> None:
        if can_mount():
            subprocess.run(["mount", "--bind", str(self.path), str(self.path)], check=True)
            self.mounted = True
            subprocess.run(["mount", "-o", "remount,bind,ro", str(self.path)], check=True)
            return
        targets = [self.path, *self.path.iterdir()] if self.path.is_dir() else [self.path]
        for target in targets:
            self.modes[target] = target.stat().st_mode & 0o7777
            target.chmod(0o555 if target.is_dir() else 0o444)

    def off(self) -> None:
        if self.mounted:
            _umount(self.path)
            self.mounted = False
        for target, mode in self.modes.items():
            target.chmod(mode)
        self.modes.clear()
