"""Real processes for the fault tests: ``qifu serve`` and ``qifu worker`` started as a deployment runs them,
killed with SIGKILL (the whole process tree: ``qifu serve`` supervises gunicorn and its workers), and a tiny
HTTP client that tells "the server answered" from "nobody answered".

Not a test module. Nothing here fakes a part: the processes are the ``qifu`` command itself.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
QIFU = [sys.executable, "-c", "from web.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children() -> dict[int, list[int]]:
    """Every process's children, read from /proc (Linux)."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (the processes this test started, and only those)."""
    tree, found, todo = _children(), [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


class Service:
    """One ``qifu …`` command in a process of its own, its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path,
                 user: list[str] | None = None) -> None:
        self.name = name
        self.args = args
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.user = user or []  # e.g. setpriv … to run as another user
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    def start(self) -> Service:
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n--- start {self.starts}: {' '.join(self.args)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen([*self.user, *QIFU, *self.args], env=self.env, cwd=ROOT, stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL to the command and every process under it at once: nothing gets to clean up."""
        if self.proc is None:
            return
        pids = process_tree(self.proc.pid)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.kills += 1
        self.proc = None

    def stop(self) -> int | None:
        """SIGTERM (a graceful stop); SIGKILL after 30 s. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None
        for pid in process_tree(self.proc.pid)[1:]:  # an orphan would keep the port or fire timers
            os.kill(pid, signal.SIGKILL)
        self.proc = None
        return code

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""


class WebServer(Service):
    """``qifu serve --port P --no-timers``: the web UI alone (executors run as ``qifu worker``)."""

    def __init__(self, env: dict[str, str], log_dir: Path, user: list[str] | None = None) -> None:
        self.port = free_port()
        super().__init__("web", ["serve", "--port", str(self.port), "--no-timers"], env, log_dir, user)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 90) -> None:
        """Until the server answers (the OpenAPI document needs no database, so this works during an outage)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.running(), f"qifu serve exited:\n{self.log()}"
            if request("GET", f"{self.base}/api/openapi.json", timeout=2).status == 200:
                return
            time.sleep(0.1)
        raise AssertionError(f"qifu serve did not answer within {timeout} s:\n{self.log()}")

    def kill9(self) -> None:
        super().kill9()
        deadline = time.monotonic() + 30  # the port is free once no process of the old tree holds it
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", self.port))
                    return
                except OSError:
                    time.sleep(0.05)


def worker(env: dict[str, str], log_dir: Path, lease_seconds: float = 3) -> Service:
    """``qifu worker``, with a short claim lease where the command has one (a killed executor's claims are
    taken over once the lease runs out; the default minute is longer than a test should wait)."""
    args = ["worker"]
    if "--lease" in _worker_help():
        args += ["--lease", str(lease_seconds)]
    return Service("worker", args, env, log_dir)


_HELP: list[str] = []


def _worker_help() -> str:
    if not _HELP:
        out = subprocess.run([*QIFU, "worker", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        _HELP.append(out.stdout)
    return _HELP[0]


# --- HTTP ------------------------------------------------------------------------------------------------
@dataclass
class Answer:
    """What came back: ``status`` 0 when nobody answered (refused, reset, timed out)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str = ""

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def request(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
            timeout: float = 30) -> Answer:
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Answer(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())
    except (OSError, http.client.HTTPException) as exc:  # refused, reset, closed mid-answer
        return Answer(0, error=f"{type(exc).__name__}: {exc}")


def qifu(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run one ``qifu`` command to the end (e.g. ``audit verify``)."""
    return subprocess.run([*QIFU, *args], env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
