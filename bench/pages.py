"""Page benchmark: how long the server takes for each page at a small size and at N cases, and how it grows.

    python -m bench.pages --cases N [--small 1000] [--database-url URL] [--workdir DIR] [--repeat R]
                          [--budget S] [--seed K] [--rebuild]

A measurement, not a test: it prints one table and always exits 0 (timings depend on the machine and its
load; a timed assertion in the suite would only be flaky). Targets (issue #17) at N = 100,000 on SQLite:
every page p95 ≤ 150 ms, and from 1,000 to 100,000 cases a paged page's p95 grows ≤ 2×. At other sizes the
table applies the same numbers, as an indication.

**Data.** Two databases, of ``--small`` and of ``--cases`` cases, each a simulated year of work built only
through the public intake and engine paths (:mod:`bench.page_data`: both processes, half closed, some
overdue, timers waiting). Building is slow (several engine steps per case), so a built database is cached
and reused: SQLite files under ``--workdir`` (default ``var/bench/``) named ``pages-<N>-<hash>.db``, where the
hash covers ``processes/*.bpmn``, ``migrations/versions/*``, ``bench/page_data.py`` and the seed; with
``--database-url postgresql+psycopg://…`` a database ``qifu_bench_<N>`` on that server, marked complete by
a database comment holding the hash (a changed hash drops and rebuilds it). Pages write (login attempts,
server-side sessions), so each measurement runs on a copy: a file copy, or ``CREATE DATABASE … TEMPLATE``.
``--rebuild`` ignores the cache.

**Timing.** Server time: ``time.perf_counter()`` around ``client.get(url)`` with Flask's test client, in
this process (no network, no browser), over the final clock of the simulated year. Each user logs in
once through ``/login`` with the form's CSRF token; the first request of every page is a warm-up and not
counted; then ``--repeat`` requests (default 20), or fewer when a page exceeds ``--budget`` seconds
(default 60; at least 3 requests). The response size is printed too: a paged page should stay small. A
page that answers other than 200 shows its status instead of a time; the case search page is not there
yet (another issue adds it) and shows ``n/a (page missing)`` while ``/cases?q=…`` answers 404.

Which pages are *paged* (the growth target applies): the inboxes, the ledger pages, tracking, the case
search, and the case page (one case: it must not grow with the database either). The briefing (one row
per unit) and the xlsx export (the whole ledger, by nature) have only the p95 target.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import sqlite3
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url

from engine import db, maintenance, migrate
from engine.clock import SHANGHAI, FixedClock, to_utc
from engine.models import Event, Instance
from engine.process_engine import ProcessEngine

from . import page_data

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORKDIR = ROOT / "var" / "bench"
P95_TARGET_MS = 150.0
GROWTH_TARGET = 2.0
MIN_REPEAT = 3
_TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


# --- where the built databases live -------------------------------------------------------------------------
def content_hash(seed: int, template: int = page_data.TEMPLATE_CASES) -> str:
    """What the data depends on: the builder, the seed and the template size. Neither the schema nor the
    diagrams are in it: a cached database is brought to the newest migration when it is reused
    (:func:`upgrade_to_head`), as a deployed database is, and a diagram edited since the build is reported
    (:func:`diagram_drift`) — the cases stay on the version they started on, as in production — so an index
    or a diagram tweak does not throw away the build."""
    digest = hashlib.sha256(f"seed={seed}\ntemplate={template}\n".encode())
    path = Path(page_data.__file__)
    digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def diagram_drift(url: str) -> str:
    """Which seed diagrams differ from the versions the cached cases run on (empty when none)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            deployed = {key: digest for key, digest in conn.execute(text(
                "SELECT process_key, content_hash FROM deployment ORDER BY version"))}
    finally:
        engine.dispose()
    changed = [path.stem for path in sorted((ROOT / "processes").glob("*.bpmn"))
               if deployed.get(path.stem) not in (None, hashlib.sha256(path.read_bytes()).hexdigest())]
    return f"cases run on an earlier version of {', '.join(changed)} (edited since the build)" if changed else ""


def head_revision() -> str:
    """The newest Alembic revision in ``migrations/versions``."""
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory.from_config(migrate.alembic_config()).get_current_head())


def schema_revision(url: str) -> str | None:
    """The revision a database is at (``alembic_version``), None before the first migration."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        engine.dispose()


def upgrade_to_head(url: str) -> str:
    """Migrate a cached database to the newest revision and refresh its statistics; says what it did."""
    before, head = schema_revision(url), head_revision()
    if before == head:
        return f"schema at {head}"
    t0 = time.perf_counter()
    migrate.upgrade(url)
    stats = maintenance.analyze(url)
    db.dispose_all()
    return f"schema migrated {before} -> {head} in {time.perf_counter() - t0:.1f} s (then ANALYZE {stats.seconds:.1f} s)"


@dataclass
class Built:
    """A built (or reused) database of ``cases`` cases, as the report names it."""

    cases: int
    label: str  # where it is, for the report
    reused: bool
    build_seconds: float = 0.0
    schema: str = ""  # the migration it is at, or what upgrading it did
    analyze_seconds: float = 0.0
    cloned: int = 0  # cases copied from the real ones (page_data.Cloner)
    clone_seconds: float = 0.0


class SqliteStore:
    """Files ``pages-<N>-<hash>.db`` under the workdir; a build is written under another name and renamed
    when it has finished, so an interrupted build is never taken for a finished one."""

    def __init__(self, workdir: Path, digest: str) -> None:
        self.workdir, self.digest = workdir, digest
        workdir.mkdir(parents=True, exist_ok=True)

    def path(self, cases: int) -> Path:
        return self.workdir / f"pages-{cases}-{self.digest}.db"

    def url(self, cases: int) -> str:
        return f"sqlite:///{self.path(cases)}"

    def ensure(self, cases: int, seed: int, rebuild: bool, template: int) -> Built:
        final = self.path(cases)
        if final.exists() and not rebuild:
            return Built(cases, str(final), reused=True, schema=self._upgrade(final))
        for stale in self.workdir.glob(f"pages-{cases}-*.db*"):
            print(f"  [cache] removing {stale.name}", file=sys.stderr)
            stale.unlink()
        building = final.with_suffix(".building")
        _remove_sqlite(building)
        t0 = time.perf_counter()
        made = page_data.build(f"sqlite:///{building}", cases, seed, template=template)
        build_seconds = time.perf_counter() - t0
        # A database that has run a while has its statistics (the daily engine.maintenance.optimize); give the
        # fresh build the same, or the planner guesses.
        stats = maintenance.analyze(f"sqlite:///{building}")
        db.dispose_all()
        _checkpoint(building)
        building.rename(final)  # only a finished build gets the final name
        return Built(cases, str(final), reused=False, build_seconds=build_seconds, schema=f"schema at {head_revision()}",
                     analyze_seconds=stats.seconds, cloned=made.cloned, clone_seconds=made.clone_seconds)

    def _upgrade(self, final: Path) -> str:
        """Bring a cached file to the newest migration: on a copy, renamed over it only once it succeeded."""
        url = f"sqlite:///{final}"
        if schema_revision(url) == head_revision():
            return f"schema at {head_revision()}"
        work = final.with_suffix(".upgrading")
        _remove_sqlite(work)
        shutil.copyfile(final, work)
        done = upgrade_to_head(f"sqlite:///{work}")
        _checkpoint(work)
        work.rename(final)
        return done

    @contextmanager
    def copy(self, cases: int) -> Iterator[str]:
        run = self.workdir / f"run-{cases}.db"
        _remove_sqlite(run)
        shutil.copyfile(self.path(cases), run)
        url = f"sqlite:///{run}"
        try:
            yield url
        finally:
            db.dispose_all()
            _remove_sqlite(run)


def _checkpoint(path: Path) -> None:
    """Fold the WAL into the main file and remove the side files, so the file alone is the database."""
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    _remove_sqlite(path, keep_main=True)


def _remove_sqlite(path: Path, keep_main: bool = False) -> None:
    for p in ([] if keep_main else [path]) + [Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")]:
        if p.exists():
            p.unlink()


class PostgresStore:
    """Databases ``qifu_bench_<N>`` on the server of ``--database-url``; the comment marks a finished build."""

    def __init__(self, url: str, digest: str) -> None:
        self.url, self.digest = url, digest
        self.admin: Engine = create_engine(url, isolation_level="AUTOCOMMIT")

    def name(self, cases: int) -> str:
        return f"qifu_bench_{cases}"

    def url(self, cases: int) -> str:
        return self.url_for(self.name(cases))

    def url_for(self, name: str) -> str:
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def marker(self) -> str:
        return f"qifu page bench {self.digest}"

    def _comment(self, name: str) -> str | None:
        with self.admin.connect() as conn:
            return conn.scalar(text("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                                    "WHERE datname = :n"), {"n": name})

    def _exec(self, sql: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(sql))

    def ensure(self, cases: int, seed: int, rebuild: bool, template: int) -> Built:
        name = self.name(cases)
        label = make_url(self.url_for(name)).render_as_string(hide_password=True)
        if not rebuild and self._comment(name) == self.marker():
            return Built(cases, label, reused=True, schema=upgrade_to_head(self.url_for(name)))
        self._exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._exec(f'CREATE DATABASE "{name}"')
        t0 = time.perf_counter()
        made = page_data.build(self.url_for(name), cases, seed, template=template)
        build_seconds = time.perf_counter() - t0
        # A server that has run a while has its statistics (autovacuum); give the fresh database the same.
        t1 = time.perf_counter()
        target = create_engine(self.url_for(name), isolation_level="AUTOCOMMIT")
        with target.connect() as conn:
            conn.execute(text("VACUUM ANALYZE"))
        target.dispose()
        self._exec(f"COMMENT ON DATABASE \"{name}\" IS '{self.marker()}'")  # the digest is hex: no quoting issue
        return Built(cases, label, reused=False, build_seconds=build_seconds, schema=f"schema at {head_revision()}",
                     analyze_seconds=time.perf_counter() - t1, cloned=made.cloned, clone_seconds=made.clone_seconds)

    @contextmanager
    def copy(self, cases: int) -> Iterator[str]:
        run = f"{self.name(cases)}_run"
        self._exec(f'DROP DATABASE IF EXISTS "{run}" WITH (FORCE)')
        self._exec(f'CREATE DATABASE "{run}" TEMPLATE "{self.name(cases)}"')
        try:
            yield self.url_for(run)
        finally:
            db.dispose_all()
            self._exec(f'DROP DATABASE IF EXISTS "{run}" WITH (FORCE)')

    def server_version(self) -> str:
        with self.admin.connect() as conn:
            return str(conn.scalar(text("SHOW server_version")))


# --- what to request ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PageSpec:
    label: str
    user: str
    url: str
    paged: bool
    optional: bool = False  # a page that may not exist yet: 404 reads "n/a (page missing)"
    streamed: bool = False  # a download: time to the first byte and to the whole file, each on its own line


@dataclass
class Landmarks:
    """Cases and values the pages are asked about, found in the database (outside any timing)."""

    long_key: str
    long_events: int
    typical_key: str
    typical_events: int
    enterprise: str
    ledger_month: str
    briefing_month: str
    credit_code_part: str = ""


def landmarks(engine: ProcessEngine) -> Landmarks:
    from handlers.models import EnterpriseCase

    end = to_utc(page_data.END).astimezone(SHANGHAI)
    ledger_month = f"{end.year - (end.month <= 6)}-{(end.month - 7) % 12 + 1:02d}"  # six months before
    briefing_month = f"{end.year - (end.month == 1)}-{(end.month - 2) % 12 + 1:02d}"  # the last full month
    with engine.session() as s:
        events = func.count(Event.id).label("n")
        long_id, long_events = s.execute(select(Event.instance_id, events).group_by(Event.instance_id)
                                         .order_by(events.desc(), Event.instance_id).limit(1)).one()
        long_key = s.scalar(select(Instance.business_key).where(Instance.id == long_id))
        # typical: the closed Fenghua case with the median number of events
        per_case = (select(EnterpriseCase.business_key, EnterpriseCase.enterprise_name, events)
                    .join(Event, Event.instance_id == EnterpriseCase.instance_id)
                    .where(EnterpriseCase.region == "fenghua", EnterpriseCase.ledger_status == "closed")
                    .group_by(EnterpriseCase.business_key, EnterpriseCase.enterprise_name))
        count = s.scalar(select(func.count()).select_from(per_case.subquery())) or 1
        typical_key, enterprise, typical_events = s.execute(
            per_case.order_by(events, EnterpriseCase.business_key).offset(count // 2).limit(1)).one()
        code = s.scalar(select(EnterpriseCase.credit_code).where(EnterpriseCase.region == "pan_an",
                                                                 EnterpriseCase.credit_code.is_not(None))
                        .order_by(EnterpriseCase.id).limit(1)) or ""
        return Landmarks(long_key, long_events, typical_key, typical_events, enterprise, ledger_month,
                         briefing_month, code[8:16].lower())  # 8 characters of the code, typed in lower case


def page_specs(marks: Landmarks) -> list[PageSpec]:
    ledger = "/supervision/ledger"
    return [
        PageSpec("inbox /", "fh_unit", "/", True),
        PageSpec("inbox /", "pa_accept", "/", True),
        PageSpec("supervisor inbox /?scope=all", "fh_super", "/?scope=all", True),
        PageSpec("supervisor inbox /?scope=all", "pa_super", "/?scope=all", True),
        PageSpec("ledger", "pa_super", ledger, True),
        PageSpec("ledger ?status=carried", "pa_super", f"{ledger}?status=carried", True),
        PageSpec("ledger ?unit=PA03", "pa_super", f"{ledger}?unit=PA03", True),
        PageSpec(f"ledger ?month={marks.ledger_month}", "pa_super", f"{ledger}?month={marks.ledger_month}", True),
        PageSpec("ledger", "fh_super", ledger, True),
        PageSpec("ledger ?status=carried", "fh_super", f"{ledger}?status=carried", True),
        PageSpec("ledger ?unit=FH-JXJ", "fh_super", f"{ledger}?unit=FH-JXJ", True),
        PageSpec(f"ledger ?month={marks.ledger_month}", "fh_super", f"{ledger}?month={marks.ledger_month}", True),
        PageSpec("tracking", "pa_super", "/supervision/tracking", True),
        PageSpec(f"briefing ?month={marks.briefing_month}", "fh_super",
                 f"/supervision/briefing?month={marks.briefing_month}", False),
        PageSpec(f"briefing ?month={marks.briefing_month}", "pa_super",
                 f"/supervision/briefing?month={marks.briefing_month}", False),
        PageSpec("case page, long case", "fh_super", f"/cases/{marks.long_key}", True),
        PageSpec("case page, typical case", "fh_super", f"/cases/{marks.typical_key}", True),
        PageSpec("case search /cases?q=<enterprise>", "fh_super", f"/cases?q={quote(marks.enterprise)}", True,
                 optional=True),
        PageSpec("case search ?q=<4 chars inside a name>", "fh_super", f"/cases?q={quote(marks.enterprise[2:6])}",
                 True, optional=True),
        PageSpec("case search ?q=<credit code part>", "pa_super", f"/cases?q={marks.credit_code_part}", True,
                 optional=True),
        PageSpec("ledger.xlsx", "pa_super", f"{ledger}.xlsx", True, streamed=True),
        PageSpec("ledger.xlsx", "fh_super", f"{ledger}.xlsx", True, streamed=True),
    ]


# --- measuring ----------------------------------------------------------------------------------------------
@dataclass
class Timing:
    status: int = 200
    samples: list[float] = field(default_factory=list)  # seconds
    first: list[float] = field(default_factory=list)  # seconds to the first byte (downloads)
    kb: float = 0.0
    note: str = ""  # why there is no time (e.g. the login failed)

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.samples)

    @property
    def p50(self) -> float:
        return 1000 * statistics.median(self.samples)

    @property
    def p95(self) -> float:
        if len(self.samples) == 1:
            return 1000 * self.samples[0]
        return 1000 * statistics.quantiles(self.samples, n=20, method="inclusive")[18]

    def first_byte(self) -> Timing:
        """The same requests timed to their first byte."""
        return Timing(self.status, samples=list(self.first), kb=self.kb, note=self.note)


def _login(client: FlaskClient, username: str) -> bool:
    from web.demo.users import DEMO_PASSWORD

    match = _TOKEN.search(client.get("/login").get_data(as_text=True))
    if not match:
        return False
    response = client.post("/login", data={"csrf_token": match.group(1) or match.group(2), "username": username,
                                           "password": DEMO_PASSWORD})
    return response.status_code == 302


def measure(url: str, specs: list[PageSpec], repeat: int, budget: float, var_dir: Path) -> dict[PageSpec, Timing]:
    """Request every page of ``specs`` on the database at ``url``: one warm-up, then up to ``repeat`` times."""
    from web.app import create_app

    engine = ProcessEngine(url, FixedClock(page_data.END), page_data.registry())
    app = create_app(engine=engine, config={"SECRET_KEY": "qifu-page-bench",
                                            "QIFU_VAR_DIR": str(var_dir)})
    clients: dict[str, FlaskClient | None] = {}
    out: dict[PageSpec, Timing] = {}
    for spec in specs:
        if spec.user not in clients:
            client = app.test_client()
            clients[spec.user] = client if _login(client, spec.user) else None
        client = clients[spec.user]
        if client is None:
            out[spec] = Timing(status=0, note="login failed")
            continue
        response = client.get(spec.url)  # warm-up: templates compiled, caches filled
        timing = Timing(status=response.status_code, kb=len(response.data) / 1024)
        out[spec] = timing
        if response.status_code != 200:
            continue
        started = time.perf_counter()
        for n in range(repeat):
            t0 = time.perf_counter()
            if spec.streamed:  # the view may stream: time its first non-empty chunk, then the rest
                response = client.get(spec.url, buffered=False)
                chunks = iter(response.response)
                for chunk in chunks:
                    if chunk:
                        break
                timing.first.append(time.perf_counter() - t0)
                for _ in chunks:
                    pass
                response.close()
            else:
                response = client.get(spec.url)
            timing.samples.append(time.perf_counter() - t0)
            if response.status_code != 200:
                timing.status = response.status_code
                break
            if n + 1 >= MIN_REPEAT and time.perf_counter() - started > budget:
                break
    return out


# --- what each page asks the database (--explain) -----------------------------------------------------------
@dataclass
class Statement:
    sql: str
    params: Any
    seconds: float


@contextmanager
def captured(url: str) -> Iterator[list[Statement]]:
    """Every statement run on ``url``'s engines (write and read) while the block runs, with its time."""
    from sqlalchemy import event

    out: list[Statement] = []
    engines = {id(e): e for e in (db.get_engine(url), db.get_read_engine(url))}
    targets = [e.engine if hasattr(e, "engine") else e for e in engines.values()]
    started: list[float] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        started.append(time.perf_counter())

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        out.append(Statement(statement, parameters, time.perf_counter() - started.pop()))

    unique = {id(t): t for t in targets}.values()
    for target in unique:
        event.listen(target, "before_cursor_execute", before)
        event.listen(target, "after_cursor_execute", after)
    try:
        yield out
    finally:
        for target in unique:
            event.remove(target, "before_cursor_execute", before)
            event.remove(target, "after_cursor_execute", after)


def plan_of(url: str, st: Statement) -> list[str]:
    """``EXPLAIN QUERY PLAN`` (SQLite) or ``EXPLAIN (ANALYZE, BUFFERS)`` (PostgreSQL) of one captured SELECT."""
    engine = db.get_engine(url)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if engine.dialect.name == "sqlite":
            cur.execute("EXPLAIN QUERY PLAN " + st.sql, st.params)
            rows = cur.fetchall()
            depth: dict[int, int] = {0: 0}
            lines = []
            for node, parent, _, detail in rows:
                depth[node] = depth.get(parent, 0) + 1
                lines.append("  " * depth[node] + str(detail))
            return lines
        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + st.sql, st.params)
        return [str(r[0]) for r in cur.fetchall()]
    finally:
        raw.rollback()
        raw.close()


def explain(url: str, specs: list[PageSpec], var_dir: Path, slower_than_ms: float) -> None:
    """Request each page once (after a warm-up) and print its statements; the plan of each one slower than
    ``slower_than_ms`` (or, with 0, of every SELECT)."""
    from web.app import create_app

    engine = ProcessEngine(url, FixedClock(page_data.END), page_data.registry())
    app = create_app(engine=engine, config={"SECRET_KEY": "qifu-page-bench", "QIFU_VAR_DIR": str(var_dir)})
    clients: dict[str, FlaskClient] = {}
    for spec in specs:
        if spec.user not in clients:
            clients[spec.user] = app.test_client()
            _login(clients[spec.user], spec.user)
        client = clients[spec.user]
        client.get(spec.url)
        with captured(url) as statements:
            t0 = time.perf_counter()
            status = client.get(spec.url).status_code
            total = time.perf_counter() - t0
        in_db = sum(st.seconds for st in statements)
        print(f"\n=== {spec.label} ({spec.user}) HTTP {status}: {1000 * total:.1f} ms, {len(statements)} statements, "
              f"{1000 * in_db:.1f} ms in the database")
        for st in statements:
            head = " ".join(st.sql.split())
            print(f"  {1000 * st.seconds:8.2f} ms  {head[:220]}{'…' if len(head) > 220 else ''}")
            if head.upper().startswith(("SELECT", "WITH")) and 1000 * st.seconds >= slower_than_ms:
                for line in plan_of(url, st):
                    print(f"              | {line}")


# --- the report ---------------------------------------------------------------------------------------------
def _cell(t: Timing, optional: bool) -> str:
    if t.note:
        return f"{t.note:>24}"
    if t.status != 200:
        text_ = "n/a (page missing)" if optional and t.status == 404 else f"HTTP {t.status}"
        return f"{text_:>24}"
    few = "*" if len(t.samples) < MIN_REPEAT + 1 else " "
    return f"{t.p50:7.1f} {t.p95:7.1f}{few}{t.kb:8.1f}"


def verdict(spec: PageSpec, small: Timing, big: Timing, *, info: bool = False) -> tuple[str, str, str]:
    """(growth, target, verdict) of one page; ``info``: a figure printed without a target."""
    target = "none (info)" if info else (
        f"p95<={P95_TARGET_MS:.0f}ms" + (f", <={GROWTH_TARGET:.0f}x" if spec.paged else ""))
    if not (small.ok and big.ok):
        return "", target, "n/a" if spec.optional and 404 in (small.status, big.status) else "ERROR"
    ratio = big.p95 / small.p95 if small.p95 > 0 else float("inf")
    if info:
        return f"{ratio:5.2f}x", target, "info"
    ok = big.p95 <= P95_TARGET_MS and (not spec.paged or ratio <= GROWTH_TARGET)
    return f"{ratio:5.2f}x", target, "PASS" if ok else "BELOW"


LABEL = 44


def report(specs: list[PageSpec], small_n: int, big_n: int, small: dict[tuple[str, str], Timing],
           big: dict[tuple[str, str], Timing]) -> None:
    """The table: one line per page, both sizes, growth, target and verdict. A download has two lines: the
    first byte (the target: a streamed export answers at once however long the ledger) and the whole file
    (printed for information: it grows with the rows it holds, by nature)."""
    sizes = f"{'':<{LABEL}} {'':<10}| {f'{small_n:,} cases':^24} | {f'{big_n:,} cases':^24} |"
    cells = f"{'p50':>7} {'p95':>7} {'KB':>8}"
    head = f"{'page':<{LABEL}} {'user':<10}| {cells} | {cells} | {'growth':>6} | {'target':<19}| verdict"
    print(sizes)
    print(head)
    print("-" * len(head))
    for spec in specs:
        a, b = small[spec.label, spec.user], big[spec.label, spec.user]
        lines = [(spec.label, a, b, False)]
        if spec.streamed:
            lines = [(f"{spec.label} — first byte", a.first_byte(), b.first_byte(), False),
                     (f"{spec.label} — whole file", a, b, True)]
        for label, x, y, info in lines:
            growth, target, word = verdict(spec, x, y, info=info)
            print(f"{label:<{LABEL}} {spec.user:<10}| {_cell(x, spec.optional)} | {_cell(y, spec.optional)} | "
                  f"{growth:>6} | {target:<19}| {word}")
    print("times in ms (p50, p95 over the repetitions, first request not counted); KB = response size; "
          f"* = fewer than {MIN_REPEAT + 1} repetitions (page over the time budget)")
    print(f"targets (issue #17, at N = 100,000 on SQLite): p95 <= {P95_TARGET_MS:.0f} ms for every page, "
          f"growth of p95 from 1,000 to 100,000 cases <= {GROWTH_TARGET:.0f}x for paged pages; an export's "
          "target is its first byte")


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def run(args: argparse.Namespace) -> None:
    digest = content_hash(args.seed, args.template)
    store: SqliteStore | PostgresStore
    if args.database_url:
        store = PostgresStore(args.database_url, digest)
        backend = f"PostgreSQL {store.server_version()}"
    else:
        store = SqliteStore(args.workdir, digest)
        backend = f"SQLite {sqlite3.sqlite_version}"
    sizes = sorted({args.small, args.cases})
    var_dir = args.workdir / "run-var"  # the app's var/ (secret key, attachments): kept out of the repository's
    print(f"Qifu page benchmark — python {sys.version.split()[0]}, {backend}, data hash {digest}, seed {args.seed}",
          flush=True)
    built = {n: store.ensure(n, args.seed, args.rebuild, args.template) for n in sizes}
    for n, b in built.items():
        made = (f"{n:,} cases through intake, tasks and timers" if n <= args.template or not args.template else
                f"{args.template:,} cases through intake, tasks and timers, cloned to {n:,} (page_data.Cloner)")
        how = "reused (cached)" if b.reused else (
            f"built in {b.build_seconds:,.0f} s" + (f" (cloning {b.clone_seconds:,.0f} s)" if b.cloned else "")
            + f", ANALYZE {b.analyze_seconds:.1f} s")
        print(f"  {n:>7,} cases: {b.label} — {made}; {how}; {b.schema}")
        drift = diagram_drift(store.url(n))
        if drift:
            print(f"  {n:>7,} cases: note: {drift}")
    if args.build_only:
        return
    final = to_utc(page_data.END).astimezone(SHANGHAI)
    print(f"clock: the simulated year {page_data.START[:10]} … {final:%Y-%m-%d %H:%M} (Asia/Shanghai), pages "
          f"requested at its end; {args.repeat} repetitions per page after one warm-up, budget {args.budget:.0f} s "
          f"per page")
    if args.explain:
        with store.copy(args.cases) as url:
            marks = landmarks(ProcessEngine(url, FixedClock(page_data.END), page_data.registry()))
            explain(url, page_specs(marks), var_dir, args.explain_ms)
        return
    results: dict[int, dict[PageSpec, Timing]] = {}
    specs: list[PageSpec] = []
    for n in sizes:
        with store.copy(n) as url:
            engine = ProcessEngine(url, FixedClock(page_data.END), page_data.registry())
            marks = landmarks(engine)
            print(f"  {n:>7,} cases: long case {marks.long_key} ({marks.long_events} events), typical case "
                  f"{marks.typical_key} ({marks.typical_events} events), search q={marks.enterprise}")
            specs = page_specs(marks)
            t0 = time.perf_counter()
            before = _load()
            # keyed by (label, user): the case keys and the search name differ between the two databases
            results[n] = {(s.label, s.user): t for s, t in measure(url, specs, args.repeat, args.budget, var_dir).items()}
            print(f"  {n:>7,} cases: measured in {time.perf_counter() - t0:,.0f} s; {before} before, {_load()} after")
    print()
    report(specs, args.small, args.cases, results[args.small], results[args.cases])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, required=True, help="the large size N (the target is 100,000)")
    parser.add_argument("--small", type=int, default=1000, help="the small size (default 1000)")
    parser.add_argument("--database-url", help="a PostgreSQL server (postgresql+psycopg://…); default SQLite")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                        help="where SQLite databases are cached (default var/bench/)")
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per page (default 20)")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="seconds per page after which fewer repetitions are taken (default 60, at least 3)")
    parser.add_argument("--seed", type=int, default=page_data.DEFAULT_SEED, help="the data's random seed")
    parser.add_argument("--rebuild", action="store_true", help="build again even when a cached database exists")
    parser.add_argument("--template", type=int, default=page_data.TEMPLATE_CASES,
                        help="above this many cases, build this many for real and clone them "
                             f"(default {page_data.TEMPLATE_CASES:,}; 0: build every case for real)")
    parser.add_argument("--build-only", action="store_true", help="build (or upgrade) the databases, measure nothing")
    parser.add_argument("--explain", action="store_true",
                        help="instead of timing: each page's statements at --cases, with their plans")
    parser.add_argument("--explain-ms", type=float, default=0.0,
                        help="with --explain: plans only of statements slower than this (default 0: all)")
    args = parser.parse_args(argv)
    if args.small < 20 or args.cases < args.small or args.repeat < 1:
        parser.error("need 20 <= --small <= --cases and --repeat >= 1")
    if args.database_url and not args.database_url.startswith("postgresql"):
        parser.error("--database-url must be a PostgreSQL server (SQLite databases live under --workdir)")
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

