"""``qifu serve``: gunicorn with N workers, the timer executor in exactly one process, clean stops.

The process tree is read from /proc: ``qifu serve`` (supervisor) → gunicorn master → workers, and beside it
one executor. Timers are made due a few seconds ahead in real time (the servers run on the system clock)
through the engine of the test process; which process fired a timer is in its row (``claimed_by`` holds
host:pid:thread).
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.intake_load import Process, request

from .conftest import alive, children, cmdline, due_soon_engine, in_seconds, start_due, wait_until


def _tree(server) -> tuple[int, list[int], list[int]]:
    """(gunicorn master, its workers, executors) under one ``qifu serve``."""
    kids = children(server.proc.pid)
    masters = [k for k in kids if " web " in cmdline(k)]
    executors = [k for k in kids if " timers " in cmdline(k)]
    assert len(masters) == 1, [cmdline(k) for k in kids]
    return masters[0], children(masters[0]), executors


def _full_tree(server, workers: int, timeout: float = 30) -> tuple[int, list[int], list[int]]:
    """The tree once all ``workers`` have booted and the executor runs."""
    def ready():
        tree = _tree(server)
        return tree if len(tree[1]) == workers and tree[2] else None

    return wait_until(ready, timeout, f"{workers} workers and an executor")


def _open_files(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            out.add(os.readlink(fd))
        except OSError:
            continue
    return out


def _timers(engine, ids):
    from engine.models import Timer

    return [t for i in ids for t in engine.management.timers(i) if isinstance(t, Timer)]


@pytest.mark.req("BP-3")
def test_serve_runs_gunicorn_workers_and_one_executor_that_alone_fires_timers(prepared, start_server):
    server = start_server(prepared, "--workers", "2", "--threads", "2")
    status, headers, _ = server.get("/healthz")
    assert status == 200
    assert headers["server"].startswith("gunicorn") and "werkzeug" not in headers["server"].lower()
    master, workers, executors = _full_tree(server, 2)
    assert len(executors) == 1
    assert not any(children(w) for w in workers)  # no worker started an executor of its own

    engine = due_soon_engine(prepared)
    ids = start_due(engine, 5, in_seconds(2))
    wait_until(lambda: all(t.status == "fired" for t in _timers(engine, ids)), 40, "the timers to fire")
    firing_pids = {int(t.claimed_by.split(":")[1]) for t in _timers(engine, ids)}
    assert firing_pids == {executors[0]}, (firing_pids, executors, workers)


def test_no_process_but_the_workers_holds_the_sqlite_database_open(sqlite_prepared, start_server):
    """The supervisor and the gunicorn master never open the database, so no connection crosses a fork."""
    server = start_server(sqlite_prepared, "--workers", "2", "--no-timers")
    with ThreadPoolExecutor(8) as pool:  # every worker answers something that reads the database
        assert set(pool.map(lambda _: server.get("/readyz")[0], range(24))) == {200}
    db_file = sqlite_prepared["QIFU_DATABASE_URL"].removeprefix("sqlite:///")
    master, workers, executors = _tree(server)
    assert executors == []
    assert db_file not in _open_files(server.proc.pid)
    assert db_file not in _open_files(master)
    assert any(db_file in _open_files(w) for w in workers)


def test_no_timers_means_no_executor_and_timers_wait(sqlite_prepared, start_server):
    server = start_server(sqlite_prepared, "--workers", "1", "--no-timers")
    engine = due_soon_engine(sqlite_prepared)
    ids = start_due(engine, 2, in_seconds(1))
    time.sleep(4)
    assert _tree(server)[2] == []
    assert [t.status for t in _timers(engine, ids)] == ["waiting", "waiting"]
    assert engine.management.run_due_timers() == 2  # they were due: nobody else was firing them


def test_sigterm_stops_everything_and_kill_9_leaves_no_orphan(sqlite_prepared, start_server):
    server = start_server(sqlite_prepared, "--workers", "2")
    master, workers, executors = _full_tree(server, 2)
    pids = [master, *workers, *executors]
    assert server.stop() == 0
    wait_until(lambda: not any(alive(p) for p in pids), 30, "every child to exit")

    second = start_server(sqlite_prepared, "--workers", "2")
    master, workers, executors = _full_tree(second, 2)
    second.proc.send_signal(signal.SIGKILL)  # the supervisor dies without a word: its children follow
    second.proc.wait()
    wait_until(lambda: not any(alive(p) for p in [master, *workers, *executors]), 40, "the orphans to exit")


@pytest.mark.req("BP-3")
def test_a_dead_executor_is_started_again(sqlite_prepared, start_server):
    server = start_server(sqlite_prepared, "--workers", "1")
    first = wait_until(lambda: _tree(server)[2], 30, "the executor")[0]
    os.kill(first, signal.SIGKILL)
    again = wait_until(lambda: [p for p in _tree(server)[2] if p != first], 30, "a new executor")
    engine = due_soon_engine(sqlite_prepared)
    ids = start_due(engine, 1, in_seconds(1))
    wait_until(lambda: _timers(engine, ids)[0].status == "fired", 40, "the timer to fire")
    assert int(_timers(engine, ids)[0].claimed_by.split(":")[1]) == again[0]


def test_debug_is_the_development_server(sqlite_prepared):
    process = Process(sqlite_prepared, "serve", "--debug", "--port", "0", "--no-timers")
    try:
        found = process.wait_for(r"开发服务器")
        assert found
        port = int(wait_until(lambda: next((line.rsplit(":", 1)[-1].strip("/ ") for line in process.err
                                            if "Running on http://127.0.0.1:" in line), None), 30, "the port"))
        status, headers, _ = request("127.0.0.1", port, "GET", "/healthz")
        assert status == 200 and headers["server"].startswith("Werkzeug")
    finally:
        process.stop()


def test_a_wrong_setting_stops_serve_before_anything_starts(sqlite_prepared):
    process = Process({**sqlite_prepared, "QIFU_TRUSTED_PROXIES": "-1"}, "serve", "--port", "0")
    assert process.proc.wait(timeout=60) == 2
    process.stop()
    assert any("QIFU_TRUSTED_PROXIES" in line for line in process.err), process.err
