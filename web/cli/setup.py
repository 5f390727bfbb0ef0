"""``qifu init``, ``qifu serve``, ``qifu worker``: set up the database, run the web server and the timers."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from . import main, pass_state, reports_errors

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"


@main.command()
@click.option("--demo", is_flag=True, help="also deploy the demo diagram and start demo cases")
@pass_state
@reports_errors
def init(state, demo: bool) -> None:
    """Create or upgrade the database, seed the working-day calendar (and demo data).

    People see each stage as it finishes; with --json the stages are one document at the end.
    """
    from sqlalchemy.engine import make_url

    from engine import migrate
    from handlers import reference

    database = make_url(state.engine.url).render_as_string(hide_password=True)
    migrate.upgrade(state.engine.url)
    days = state.engine.calendar.seed()
    say = (lambda line: None) if state.json else click.echo
    say(f"数据库已就绪: {database}；工作日历写入 {days} 天")
    with state.engine.session() as session:
        loaded = reference.load_reference(session)
    say(loaded.summary())
    data: dict[str, object] = {"database": database, "calendar_days": days, "reference": loaded.__dict__}
    if demo:
        from web.demo import load_demo
        from web.demo.users import DEMO_USERS, create_demo_users

        data["demo"] = load_demo(state.engine)
        say(str(data["demo"]))
        with state.engine.session() as session:
            created = create_demo_users(session, now=state.engine.clock.now())
        data["demo_users"] = {"total": len(DEMO_USERS), "created": created}
        say(f"演示用户 {len(DEMO_USERS)} 个（新建 {created} 个），见 web/demo/users.py")
    from engine import maintenance

    analyzed = maintenance.analyze(state.engine.url)  # the planner's statistics, current from the first day
    say(f"查询统计信息已更新（ANALYZE，{analyzed.seconds:.1f} 秒）")
    data["analyze_seconds"] = round(analyzed.seconds, 3)
    if state.json:
        state.out("", data)


def _scheduler(engine, *, poll_seconds: float = 30.0, lease_seconds: float | None = None,
               batch: int | None = None):
    """The timer executor (not started): claims batches of due timers under a lease, sleeps until the next
    due instant, and wakes when another process creates or moves a timer (engine.jobs.TimerScheduler)."""
    from engine import jobs

    return engine.management.executor(poll_seconds=poll_seconds,
                                      lease_seconds=jobs.LEASE_SECONDS if lease_seconds is None else lease_seconds,
                                      batch=jobs.CLAIM_BATCH if batch is None else batch)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535),
              help="0: any free port (the banner names it)")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="gunicorn worker processes (about one per CPU core)")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64),
              help="threads per worker (requests one worker answers at once)")
@click.option("--timeout", default=60, show_default=True, type=click.IntRange(5, 3600),
              help="seconds a request may take before gunicorn restarts its worker")
@click.option("--no-timers", is_flag=True, help="no timer executor (run `qifu worker` processes instead)")
@click.option("--debug", is_flag=True, help="Flask's development server in one process (never in production)")
@pass_state
@reports_errors
def serve(state, host: str, port: int, workers: int, threads: int, timeout: int, no_timers: bool,
          debug: bool) -> None:
    """Run the web UI under gunicorn, with one timer executor process beside it.

    The supervisor opens no database: each gunicorn worker builds its own app after the fork, and the
    executor is a process of its own, so N workers never mean N executors (see web/cli/serving.py).
    """
    from sqlalchemy.engine import make_url

    database = make_url(state.settings.engine.database_url).render_as_string(hide_password=True)
    if debug:
        _serve_debug(state, host, port, no_timers, database)
        return
    from .serving import ServeOptions, supervise

    options = ServeOptions(host=host, port=port, workers=workers, threads=threads, timeout=timeout,
                           database=database)
    code = supervise(options, timers=not no_timers)
    if code:
        sys.exit(code)


def _serve_debug(state, host: str, port: int, no_timers: bool, database: str) -> None:
    """Flask's development server with the debugger, the executor in a thread: for development only."""
    from web.app import create_app

    app = create_app(engine=state.engine, settings=state.settings)
    scheduler = None if no_timers else _scheduler(state.engine)
    if scheduler:
        scheduler.start()
    click.echo(f"Qifu 运行于 http://{host}:{port}/ (开发服务器，请勿用于生产；数据库 {database})")
    try:
        app.run(host=host, port=port, threaded=True, use_reloader=False, debug=True)
    finally:
        if scheduler:
            scheduler.shutdown()


@main.command()
@click.option("--poll", "poll_seconds", default=30.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="safety-net seconds between looks at the next due timer (changes wake it at once)")
@click.option("--lease", "lease_seconds", default=60.0, show_default=True, type=click.FloatRange(1, 3600),
              help="seconds a claim keeps other executors off a batch; a killed executor's rows wait this long")
@click.option("--batch", default=10, show_default=True, type=click.IntRange(1, 1000),
              help="due timers one claim takes (small: parallel executors share a burst)")
@pass_state
def worker(state, poll_seconds: float, lease_seconds: float, batch: int) -> None:
    """Run only the timer executor; several on PostgreSQL split the due timers between them."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # before start(): the backlog may take a while
    scheduler = _scheduler(state.engine, poll_seconds=poll_seconds, lease_seconds=lease_seconds, batch=batch)
    scheduler.start()
    click.echo("定时器执行器已启动 (Ctrl+C 退出)")
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        scheduler.shutdown()
