"""How ``qifu serve`` runs in production: gunicorn for the web, one timer executor beside it.

    qifu serve (this supervisor; opens no database)
    ├── gunicorn master (:class:`QifuApplication`) ── N workers, each building its own app and engine
    └── timer executor: ``qifu worker`` in a process of its own (unless ``--no-timers``)

Why it is built this way:

- The gunicorn master never imports the app (``preload_app`` off): each worker calls :func:`web.app.create_app`
  after the fork, so no SQLAlchemy engine, pool or SQLite connection is ever shared between processes.
- The timer executor is *one* process started here, never a thread in each worker: N workers would be N
  executors racing for the same rows, and a worker recycled by gunicorn would take its scheduler with it. It
  runs the ``qifu worker`` command itself, with the engine instrumented for metrics first.
- Both children are started from a fresh interpreter (``python -m web.cli.serving …``), in a process group
  of their own, and die with the supervisor (``PR_SET_PDEATHSIG`` on Linux): ``kill -9`` of ``qifu serve``
  leaves no orphan serving requests or firing timers. SIGTERM/SIGINT are passed on as SIGTERM (graceful),
  SIGHUP to gunicorn (reload its workers). An executor that dies is started again; gunicorn ending ends all.
- Prometheus metrics of all processes meet in one temporary directory (``PROMETHEUS_MULTIPROC_DIR``, made
  here and removed at exit), so ``/metrics`` counts every worker's requests and the executor's steps.
- gunicorn trusts no ``X-Forwarded-*`` header itself (``forwarded_allow_ips`` empty): the app decides, with
  ``QIFU_TRUSTED_PROXIES`` (see :mod:`web.app`). Its access log is off: the app writes one JSON line per
  request (:mod:`web.observability`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_WORKERS = 2
DEFAULT_THREADS = 4
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
BANNER = "Qifu 运行于"  # the line tests and scripts wait for; printed once gunicorn listens


@dataclass(frozen=True)
class ServeOptions:
    """What ``qifu serve`` was asked for (passed to the gunicorn child as JSON)."""

    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = DEFAULT_WORKERS
    threads: int = DEFAULT_THREADS
    timeout: int = 60
    database: str = ""  # for the banner only (password hidden)


# --- the gunicorn application --------------------------------------------------------------------------
def _gunicorn_application(options: ServeOptions) -> Any:
    from gunicorn.app.base import BaseApplication

    class QifuApplication(BaseApplication):
        """gunicorn driven from Python: the settings below, the app built lazily in each worker."""

        def load_config(self) -> None:
            for key, value in gunicorn_settings(options).items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            from web.app import create_app

            return create_app()

    return QifuApplication()


def gunicorn_settings(options: ServeOptions) -> dict[str, Any]:
    """gunicorn's configuration for ``qifu serve`` (module-level so a test can read what is asked for)."""
    return {
        "bind": [f"{options.host}:{options.port}"],
        "workers": options.workers,
        "worker_class": "gthread",
        "threads": options.threads,
        "timeout": options.timeout,
        "graceful_timeout": 30,
        "keepalive": 5,
        "preload_app": False,  # each worker builds its own app and database engine, after the fork
        "forwarded_allow_ips": "",  # the app's QIFU_TRUSTED_PROXIES decides which proxy headers count
        "accesslog": None,  # one JSON line per request comes from web.observability instead
        "errorlog": "-",
        "loglevel": "info",
        "control_socket_disable": True,  # no socket in $HOME shared by every server on the machine
        "proc_name": "qifu-web",
        "when_ready": _when_ready(options),
        "child_exit": _child_exit,
    }


def _when_ready(options: ServeOptions) -> Any:
    def when_ready(server: Any) -> None:
        """Say where we listen (the real port, also for ``--port 0``) once the socket accepts."""
        host, port = server.LISTENERS[0].sock.getsockname()[:2] if server.LISTENERS else (options.host, options.port)
        shown = f"[{host}]" if ":" in str(host) else host
        print(f"{BANNER} http://{shown}:{port}/ (gunicorn {options.workers} 个工作进程 × {options.threads} 线程，"
              f"数据库 {options.database})", flush=True)

    return when_ready


def _child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: its live-gauge files are merged away (counters and histograms stay counted)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


# --- the children --------------------------------------------------------------------------------------
def _die_with_parent() -> None:
    """In the child before exec: own process group, and SIGTERM when the supervisor dies (Linux)."""
    os.setpgid(0, 0)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the children outlive a kill -9 of the supervisor
        pass


def _spawn(role: str, argument: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "web.cli.serving", role, argument], env=env,
                            preexec_fn=_die_with_parent)  # preexec_fn is safe: the supervisor runs no threads


def supervise(options: ServeOptions, *, timers: bool) -> int:
    """Run gunicorn and (``timers``) one executor until told to stop; gunicorn's exit status is ours."""
    metrics_dir = tempfile.mkdtemp(prefix="qifu-metrics-")
    env = {**os.environ, MULTIPROC_ENV: metrics_dir, "PYTHONUNBUFFERED": "1"}
    stopping: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        stopping.append(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    web = _spawn("web", json.dumps(asdict(options)), env)
    executor = _spawn("timers", "-", env) if timers else None
    restart_at, backoff = 0.0, 1.0
    try:
        while True:
            while stopping:
                signum = stopping.pop(0)
                if signum == signal.SIGHUP:
                    _send(web, signal.SIGHUP)
                    continue
                _send(web, signal.SIGTERM)
                _send(executor, signal.SIGTERM)
                timers = False  # no restart from here on
            code = web.poll()
            if code is not None:
                return code
            if executor is not None and executor.poll() is not None:
                if timers and not restart_at:
                    print(f"定时器执行器已退出（状态 {executor.returncode}），{backoff:.0f} 秒后重启", file=sys.stderr,
                          flush=True)
                    restart_at = time.monotonic() + backoff
                    backoff = min(backoff * 2, 30.0)
                if timers and time.monotonic() >= restart_at:
                    executor, restart_at = _spawn("timers", "-", env), 0.0
            time.sleep(0.2)
    finally:
        _send(web, signal.SIGTERM)
        _send(executor, signal.SIGTERM)
        for child in (web, executor):
            _reap(child)
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _send(child: subprocess.Popen[bytes] | None, signum: int) -> None:
    if child is not None and child.poll() is None:
        child.send_signal(signum)


def _reap(child: subprocess.Popen[bytes] | None) -> None:
    if child is None:
        return
    try:
        child.wait(timeout=45)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _run_web(argument: str) -> None:
    _gunicorn_application(ServeOptions(**json.loads(argument))).run()


def _run_timers() -> None:
    """``qifu worker`` with this process's engine instrumented for metrics (the same command, not a copy)."""
    from web.cli import CliState, main
    from web.observability import instrument_engine

    state = CliState(json_output=False)
    instrument_engine(state.engine)
    main(["worker"], prog_name="qifu", obj=state)


if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role == "web":
        _run_web(sys.argv[2])
    elif role == "timers":
        _run_timers()
    else:
        sys.exit(f"usage: python -m web.cli.serving web OPTIONS_JSON | timers -  (got {sys.argv[1:]!r})")
