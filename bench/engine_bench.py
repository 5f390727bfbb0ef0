"""Engine benchmark: what does Qifu cost on top of raw SpiffWorkflow, and does a long case stay fast?

    python -m bench.engine_bench [--cases N] [--long-steps M] [--warmup W] [--workdir DIR]

It is a measurement, not a test: it prints numbers, their targets and PASS/BELOW, and always exits 0
(timings depend on the machine; a timed assertion in the test suite would only be flaky).

Three measurements, in one process, one run:

1. **Throughput.** The same diagram (``bench/diagrams/bench.bpmn``) and the same path — start, complete
   ``Task_Review`` (form ``approved``/``comment``, a non-interrupting working-day reminder timer attached),
   the gateway's condition, complete ``Task_Sign``, end — run N times

   - by *raw SpiffWorkflow in memory*: ``BpmnWorkflow`` + ``do_engine_steps`` + ``task.run()``; nothing is
     serialized or stored. The spec comes from Qifu's parser (the diagram uses Qifu's timer extension) and
     ``working_days_after`` uses the same in-memory working-day calendar, so both sides compute the same due
     instant; the script engine is SpiffWorkflow's plain ``PythonScriptEngine``.
   - by *Qifu end to end on SQLite*: ``Runtime.start`` and two ``Runtime.complete_task`` calls, i.e. three
     committed transactions per case, each loading state, validating the form, running the restricted
     script engine, syncing task/timer rows, appending a hash-chained history event and saving state.

   Target: Qifu ≥ 1/3 of raw cases per second. Deployment and warm-up cases are outside the timing.

   For context the report adds the *floor*: the time to serialise the case's state once and to commit one
   write transaction holding what every step must write (the instance row's state and one history row) on a
   plain ``sqlite3`` connection (no SQLAlchemy), with no engine work. Raw time plus three of each is the
   fastest any durable three-step case could be on the machine, so ``raw / floor`` bounds the reachable
   ratio. And a *naive* durable SpiffWorkflow: the whole workflow, spec included, written as one JSON row
   after every step.
2. **Bytes stored per completed case**, two ways (both printed, each labelled): *logical* — the summed
   byte lengths of every column of the case's rows in ``instance``, ``event``, ``timer`` and ``human_task``
   (SQLite ``length(CAST(col AS BLOB))``; numbers count as their decimal text) — and *file* — growth of the
   SQLite file over the timed cases (after a WAL checkpoint) divided by N, which includes indexes and page
   slack.
3. **Long-running case.** ``bench/diagrams/long_case.bpmn`` loops one user task while its ``again`` field
   is true; one case is driven for M steps. Mean step time of the first 50 steps against the last 50.
   Target: late ≤ 1.5 × early (Qifu stores state without the spec so a step should not grow with the
   case's age). The same loop in raw SpiffWorkflow is printed for context, with the state size and the
   number of tasks in SpiffWorkflow's task tree, which is what grows when a case loops.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import TaskDataEnvironment
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import text

from engine import calendar, db, migrate
from engine.calendar import WorkdayCalendar
from engine.clock import FixedClock, to_utc
from engine.process_engine import ProcessEngine
from engine.repository import parse_diagram
from engine.scripting import as_datetime
from engine.services import ServiceRegistry
from engine.state import dump_state

DIAGRAMS = Path(__file__).parent / "diagrams"
BENCH_DIAGRAM = DIAGRAMS / "bench.bpmn"
LONG_DIAGRAM = DIAGRAMS / "long_case.bpmn"
BENCH_KEY = "bench_case"
LONG_KEY = "long_case"
START = "2026-09-30T10:00:00"  # Wednesday before National Day: the reminder's deadline skips a holiday week
THROUGHPUT_TARGET = 1 / 3
LONG_TARGET = 1.5
WINDOW = 50

REVIEW_FORM = {"approved": True, "comment": "材料齐全，同意"}
SIGN_FORM = {"signed": True}


# --- raw SpiffWorkflow ---------------------------------------------------------------------------------
class RawScriptEngine(PythonScriptEngine):
    """SpiffWorkflow's own script engine plus the one hook Qifu's timer specs call (``timer_due``).

    Qifu's timer event definitions ask the workflow's script engine for their due instant once, when they
    start waiting (see ``engine.bpmn._EngineTimer``). Here that is a plain evaluation of the timer
    expression, with ``working_days_after`` answered from an in-memory calendar snapshot — no database,
    no restricted compilation, no provisional-year tracking.
    """

    def __init__(self, cal: WorkdayCalendar) -> None:
        def working_days_after(start: Any, n: int) -> str:
            return cal.deadline(to_utc(as_datetime(start)), int(n)).isoformat()

        super().__init__(environment=TaskDataEnvironment({"working_days_after": working_days_after}))

    def timer_due(self, my_task: Any, definition: Any) -> None:
        my_task._set_internal_data(event_value=self.evaluate(my_task, definition.expression))


def _ready_user_task(workflow: BpmnWorkflow) -> Any:
    return next(t for t in workflow.get_tasks(state=TaskState.READY) if t.task_spec.manual)


def _complete(workflow: BpmnWorkflow, task: Any, data: dict[str, Any]) -> None:
    task.data.update(data)
    task.run()
    workflow.do_engine_steps()


def raw_case(spec: Any, subs: dict[str, Any], script_engine: PythonScriptEngine,
             start_data: dict[str, Any]) -> BpmnWorkflow:
    """One case of the bench path in memory, doing what Qifu's runtime does minus storage and checks."""
    workflow = BpmnWorkflow(spec, subs, script_engine=script_engine)
    for t in workflow.get_tasks(state=TaskState.READY):
        t.data.update(start_data)
    workflow.do_engine_steps()
    _complete(workflow, _ready_user_task(workflow), REVIEW_FORM)
    _complete(workflow, _ready_user_task(workflow), SIGN_FORM)
    return workflow


# --- Qifu -----------------------------------------------------------------------------------------------
def qifu_case(engine: ProcessEngine, business_key: str, start_data: dict[str, Any]) -> str:
    """One case of the bench path through the public runtime API: three steps, three transactions.

    The next task's guid comes from ``StepResult.opened``, as the web layer gets it after a step.
    Returns the case's final status.
    """
    rt = engine.runtime
    started = rt.start(BENCH_KEY, business_key, start_data, actor="bench")
    reviewed = rt.complete_task(started.opened[0], REVIEW_FORM, actor="clerk")
    signed = rt.complete_task(reviewed.opened[0], SIGN_FORM, actor="leader")
    return signed.status


# --- measurement helpers ----------------------------------------------------------------------------
def _timed(fn: Callable[[int], Any], n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return time.perf_counter() - t0


def _sqlite_path(url: str) -> Path:
    return Path(url.split("///", 1)[-1])


def _checkpointed_size(path: Path) -> int:
    """The database file's size once the WAL has been folded into it (so the number means something)."""
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    return path.stat().st_size


@dataclass
class StoredBytes:
    per_table: dict[str, int] = field(default_factory=dict)
    state_json: int = 0
    data_json: int = 0
    event_payload: int = 0
    cases: int = 0

    @property
    def total(self) -> int:
        return sum(self.per_table.values())


def stored_bytes(engine: ProcessEngine, key_prefix: str) -> StoredBytes:
    """Logical bytes of the rows belonging to cases whose business key starts with ``key_prefix``."""
    out = StoredBytes()
    with engine.session() as s:
        ids = f"SELECT id FROM instance WHERE business_key LIKE '{key_prefix}%'"
        out.cases = s.scalar(text(f"SELECT count(*) FROM ({ids})")) or 0
        for table, where in (("instance", f"id IN ({ids})"), ("event", f"instance_id IN ({ids})"),
                             ("timer", f"instance_id IN ({ids})"), ("human_task", f"instance_id IN ({ids})")):
            cols = [r[1] for r in s.execute(text(f"PRAGMA table_info({table})"))]
            expr = " + ".join(f"coalesce(length(CAST({c} AS BLOB)), 0)" for c in cols)
            out.per_table[table] = int(s.scalar(text(f"SELECT coalesce(sum({expr}), 0) FROM {table} WHERE {where}")))
        out.state_json = int(s.scalar(text(
            f"SELECT coalesce(sum(length(CAST(state_json AS BLOB))), 0) FROM instance WHERE id IN ({ids})")))
        out.data_json = int(s.scalar(text(
            f"SELECT coalesce(sum(length(CAST(data_json AS BLOB))), 0) FROM instance WHERE id IN ({ids})")))
        out.event_payload = int(s.scalar(text(
            f"SELECT coalesce(sum(length(CAST(payload AS BLOB))), 0) FROM event WHERE instance_id IN ({ids})")))
    return out


def _state_size(engine: ProcessEngine, instance_id: int) -> tuple[int, int]:
    """(bytes of state_json, tasks in SpiffWorkflow's task tree) of one instance, read outside any timing."""
    workflow = engine.runtime.workflow(instance_id)
    with engine.read() as s:
        state = s.scalar(text("SELECT state_json FROM instance WHERE id = :i"), {"i": instance_id})
    return len(state.encode()), len(workflow.tasks)


def _window_means(samples: list[float]) -> tuple[float, float, int]:
    w = max(1, min(WINDOW, len(samples) // 2))
    return statistics.fmean(samples[:w]), statistics.fmean(samples[-w:]), w


# --- the three measurements ---------------------------------------------------------------------------
@dataclass
class Throughput:
    raw_seconds: float
    qifu_seconds: float
    cases: int

    @property
    def raw_rate(self) -> float:
        return self.cases / self.raw_seconds

    @property
    def qifu_rate(self) -> float:
        return self.cases / self.qifu_seconds

    @property
    def ratio(self) -> float:
        return self.qifu_rate / self.raw_rate


def measure_throughput(engine: ProcessEngine, cal: WorkdayCalendar, cases: int, warmup: int,
                       db_path: Path) -> tuple[Throughput, int]:
    """Time N raw cases and N Qifu cases of the same path. Returns the result and the SQLite file growth."""
    parsed = parse_diagram(BENCH_DIAGRAM.read_bytes(), BENCH_DIAGRAM.name, ServiceRegistry())
    raw_engine = RawScriptEngine(cal)
    start_data = {"received_at": engine.clock.now().isoformat()}

    # Sanity: both sides take the same path and compute the same reminder deadline.
    wf = BpmnWorkflow(parsed.spec, parsed.subprocess_specs, script_engine=raw_engine)
    for t in wf.get_tasks(state=TaskState.READY):
        t.data.update(start_data)
    wf.do_engine_steps()
    raw_due = next(t._get_internal_data("event_value") for t in wf.event_manager.tasks.values())
    started = engine.runtime.start(BENCH_KEY, "CHECK-1", start_data, actor="bench")
    qwf = engine.runtime.workflow(started.instance_id)
    qifu_due = next(t._get_internal_data("event_value") for t in qwf.event_manager.tasks.values())
    if to_utc(raw_due) != to_utc(qifu_due):
        print(f"WARNING: reminder due differs: raw {raw_due} vs Qifu {qifu_due}")
    if not raw_case(parsed.spec, parsed.subprocess_specs, raw_engine, start_data).completed:
        print("WARNING: the raw path did not complete")

    for i in range(warmup):
        raw_case(parsed.spec, parsed.subprocess_specs, raw_engine, start_data)
        qifu_case(engine, f"WARM-{i:06d}", start_data)

    raw_seconds = _timed(lambda i: raw_case(parsed.spec, parsed.subprocess_specs, raw_engine, start_data), cases)

    size_before = _checkpointed_size(db_path)
    statuses: list[str] = []
    qifu_seconds = _timed(lambda i: statuses.append(qifu_case(engine, f"BENCH-{i:06d}", start_data)), cases)
    growth = _checkpointed_size(db_path) - size_before
    not_done = sum(st != "completed" for st in statuses)
    if not_done:
        print(f"WARNING: {not_done} Qifu cases did not complete")
    return Throughput(raw_seconds, qifu_seconds, cases), growth


@dataclass
class Floor:
    """What any durable step costs before Qifu does anything of its own (context for the ratio)."""

    save_state: float   # seconds to serialise the bench case's state once (compaction included)
    transaction: float  # seconds for one committed transaction writing what every step must write

    def per_case(self, raw_seconds_per_case: float) -> float:
        return raw_seconds_per_case + 3 * (self.save_state + self.transaction)


def _plain_connection(db_path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection with the engine's pragmas: no SQLAlchemy, no ORM."""
    con = sqlite3.connect(db_path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL", "busy_timeout=30000"):
        con.execute(f"PRAGMA {pragma}")
    return con


def measure_floor(engine: ProcessEngine, db_path: Path, repeat: int = 300) -> Floor:
    """Time the two things no step can skip: saving the state, and committing it with its history row.

    The transaction updates one finished bench case's ``state_json`` with its own value and inserts one
    ``event`` row of a typical payload's size on a plain ``sqlite3`` connection with the engine's pragmas:
    one durable write transaction on this machine's SQLite, without any engine work and without the ORM.
    """
    con = _plain_connection(db_path)
    try:
        instance_id, state = con.execute("SELECT id, state_json FROM instance WHERE business_key = 'BENCH-000000'"
                                         ).fetchone()
        (payload,) = con.execute("SELECT payload FROM event WHERE instance_id = ? ORDER BY seq LIMIT 1",
                                 (instance_id,)).fetchone()
        workflow = engine.runtime.workflow(instance_id)
        t0 = time.perf_counter()
        for _ in range(repeat):
            dump_state(workflow)
        save = (time.perf_counter() - t0) / repeat
        t0 = time.perf_counter()
        for n in range(repeat):
            con.execute("BEGIN IMMEDIATE")
            con.execute("UPDATE instance SET state_json = ? WHERE id = ?", (state, instance_id))
            con.execute("INSERT INTO event (instance_id, seq, at, actor, action, payload, prev_hash, hash) "
                        "VALUES (?, ?, '2026-09-30 02:00:00.000000', 'bench', 'floor', ?, '', '')",
                        (instance_id, 1_000_000 + n, payload))
            con.execute("COMMIT")
        transaction = (time.perf_counter() - t0) / repeat
        con.execute("DELETE FROM event WHERE action = 'floor'")
    finally:
        con.close()
    return Floor(save, transaction)


def measure_naive(parsed: Any, cal: WorkdayCalendar, start_data: dict[str, Any], db_path: Path,
                  cases: int) -> float:
    """Seconds per case of a naive durable SpiffWorkflow: the bench path with the whole workflow (spec
    included) serialised to one JSON row after every step, one plain sqlite3 transaction per step."""
    from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer

    from engine.bpmn import serializer_config

    serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(serializer_config()))
    con = _plain_connection(db_path.with_name("naive.db"))
    con.execute("CREATE TABLE IF NOT EXISTS wf (id INTEGER PRIMARY KEY, state TEXT)")
    engine = RawScriptEngine(cal)

    def save(key: int, workflow: BpmnWorkflow) -> None:
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT OR REPLACE INTO wf (id, state) VALUES (?, ?)", (key, serializer.serialize_json(workflow)))
        con.execute("COMMIT")

    def naive_case(i: int) -> None:
        workflow = BpmnWorkflow(parsed.spec, parsed.subprocess_specs, script_engine=engine)
        for t in workflow.get_tasks(state=TaskState.READY):
            t.data.update(start_data)
        workflow.do_engine_steps()
        save(i, workflow)
        for form in (REVIEW_FORM, SIGN_FORM):
            _complete(workflow, _ready_user_task(workflow), form)
            save(i, workflow)

    try:
        return _timed(naive_case, cases) / cases
    finally:
        con.close()


@dataclass
class LongCase:
    qifu_steps: list[float]
    raw_steps: list[float]
    state_early: tuple[int, int]
    state_late: tuple[int, int]
    raw_state_early: int
    raw_state_late: int


def measure_long_case(engine: ProcessEngine, cal: WorkdayCalendar, steps: int) -> LongCase:
    """Drive one looping case for ``steps`` task completions in Qifu, then the same loop in raw memory."""
    start_data = {"received_at": engine.clock.now().isoformat()}
    rt = engine.runtime
    started = rt.start(LONG_KEY, "LONG-000001", start_data, actor="bench")
    guid = started.opened[0]
    qifu_steps: list[float] = []
    state_early = state_late = (0, 0)
    for step in range(steps):
        again = step < steps - 1
        t0 = time.perf_counter()
        result = rt.complete_task(guid, {"again": again, "note": f"第 {step + 1} 次办理"}, actor="clerk")
        qifu_steps.append(time.perf_counter() - t0)
        if step == 0:
            state_early = _state_size(engine, started.instance_id)
        elif step == steps - 2 or steps == 1:
            state_late = _state_size(engine, started.instance_id)
        if again:
            guid = result.opened[0]
    if steps > 1 and result.status != "completed":
        print(f"WARNING: long case ended as {result.status}")

    parsed = parse_diagram(LONG_DIAGRAM.read_bytes(), LONG_DIAGRAM.name, ServiceRegistry())
    wf = BpmnWorkflow(parsed.spec, parsed.subprocess_specs, script_engine=RawScriptEngine(cal))
    for t in wf.get_tasks(state=TaskState.READY):
        t.data.update(start_data)
    wf.do_engine_steps()
    raw_steps: list[float] = []
    raw_early = raw_late = 0
    for step in range(steps):
        again = step < steps - 1
        t0 = time.perf_counter()
        _complete(wf, _ready_user_task(wf), {"again": again, "note": f"第 {step + 1} 次办理"})
        raw_steps.append(time.perf_counter() - t0)
        if step == 0:
            raw_early = len(dump_state(wf).encode())
        elif step == steps - 2:
            raw_late = len(dump_state(wf).encode())
    return LongCase(qifu_steps, raw_steps, state_early, state_late, raw_early, raw_late)


# --- the command -------------------------------------------------------------------------------------
def _verdict(ok: bool) -> str:
    return "PASS" if ok else "BELOW"


def setup_engine(workdir: Path) -> tuple[ProcessEngine, WorkdayCalendar]:
    """A fresh, migrated, calendar-seeded SQLite database with both bench diagrams deployed."""
    clock = FixedClock(START)
    url = f"sqlite:///{workdir / 'bench.db'}"
    migrate.upgrade(url)
    engine = ProcessEngine(url=url, clock=clock, services=ServiceRegistry())
    with engine.session() as s:
        calendar.seed_from_chinesecalendar(s, clock.now())
    for path in (BENCH_DIAGRAM, LONG_DIAGRAM):
        engine.deploy(path.read_bytes(), filename=path.name, actor="bench")
    with engine.session() as s:
        cal = calendar.load_calendar(s)
    return engine, cal


def run(cases: int, long_steps: int, warmup: int, workdir: Path) -> None:
    """Run all three measurements and print the report."""
    engine, cal = setup_engine(workdir)
    db_path = _sqlite_path(engine.url)
    print(f"Qifu engine benchmark — python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, "
          f"database {db_path}")
    print(f"path: bench/diagrams/{BENCH_DIAGRAM.name} — start → Task_Review (form + reminder timer) → gateway → Task_Sign → end; "
          f"N={cases} cases, {warmup} warm-up cases each side untimed")

    tp, growth = measure_throughput(engine, cal, cases, warmup, db_path)
    print()
    print("== throughput (same diagram, same path, this run) ==")
    print(f"raw SpiffWorkflow, in memory : {tp.raw_rate:10.1f} cases/s  ({1000 * tp.raw_seconds / cases:7.3f} ms/case)")
    print(f"Qifu end to end, SQLite      : {tp.qifu_rate:10.1f} cases/s  ({1000 * tp.qifu_seconds / cases:7.3f} ms/case,"
          f" {1000 * tp.qifu_seconds / cases / 3:.3f} ms/step)")
    print(f"throughput ratio Qifu/raw = {tp.ratio:.3f}   target ≥ {THROUGHPUT_TARGET:.3f} (1/3)   "
          f"{_verdict(tp.ratio >= THROUGHPUT_TARGET)}")
    floor = measure_floor(engine, db_path)
    raw_case_s = tp.raw_seconds / cases
    print(f"  context, the part no step can skip (plain sqlite3, no ORM): saving the state "
          f"{1000 * floor.save_state:.3f} ms and one committed write transaction {1000 * floor.transaction:.3f} ms"
          f" per step; raw + 3 × both = {1000 * floor.per_case(raw_case_s):.3f} ms/case, i.e. a ratio of at most "
          f"{raw_case_s / floor.per_case(raw_case_s):.3f} on this machine")
    parsed = parse_diagram(BENCH_DIAGRAM.read_bytes(), BENCH_DIAGRAM.name, ServiceRegistry())
    naive = measure_naive(parsed, cal, {"received_at": engine.clock.now().isoformat()}, db_path, cases)
    print(f"  context, a naive durable SpiffWorkflow (the whole workflow with its spec as one JSON row per step, "
          f"plain sqlite3): {1000 * naive:.3f} ms/case, ratio {raw_case_s / naive:.3f} — it keeps no task or timer "
          f"rows, no history chain and no form check")

    sb = stored_bytes(engine, "BENCH-")
    n = max(sb.cases, 1)
    print()
    print(f"== bytes stored per completed case (mean over {sb.cases} cases) ==")
    print(f"logical (summed column bytes of the case's rows): {sb.total / n:,.0f} B/case  = "
          + ", ".join(f"{t} {b / n:,.0f}" for t, b in sb.per_table.items()))
    print(f"  of which instance.state_json {sb.state_json / n:,.0f}, instance.data_json {sb.data_json / n:,.0f}, "
          f"event.payload {sb.event_payload / n:,.0f}")
    print(f"SQLite file growth (checkpointed file size delta / N, incl. indexes and page slack): "
          f"{growth / cases:,.0f} B/case")

    lc = measure_long_case(engine, cal, long_steps)
    early, late, w = _window_means(lc.qifu_steps)
    ratio = late / early
    r_early, r_late, _ = _window_means(lc.raw_steps)
    print()
    print(f"== long-running case: {LONG_DIAGRAM.name}, one case, M={long_steps} loop steps ==")
    print(f"Qifu step time: first {w} mean {1000 * early:.3f} ms, last {w} mean {1000 * late:.3f} ms "
          f"(medians {1000 * statistics.median(lc.qifu_steps[:w]):.3f} / {1000 * statistics.median(lc.qifu_steps[-w:]):.3f} ms)")
    print(f"long-case step ratio late/early = {ratio:.2f}×   target ≤ {LONG_TARGET:.1f}×   {_verdict(ratio <= LONG_TARGET)}")
    print(f"  state_json after step 1: {lc.state_early[0]:,} B, {lc.state_early[1]} tasks in the task tree; "
          f"after step {max(long_steps - 1, 1)}: {lc.state_late[0]:,} B, {lc.state_late[1]} tasks")
    print(f"  raw SpiffWorkflow, same loop in memory (context, no target): first {w} mean "
          f"{1000 * r_early:.3f} ms, last {w} mean {1000 * r_late:.3f} ms, ratio {r_late / r_early:.2f}×; "
          f"serialized state {lc.raw_state_early:,} B → {lc.raw_state_late:,} B")

    db.dispose(engine.url)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run in a temporary directory (or ``--workdir``), print the report, return 0."""
    parser = argparse.ArgumentParser(prog="python -m bench.engine_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000, help="cases per side for throughput (default 1000)")
    parser.add_argument("--long-steps", type=int, default=300, help="loop steps of the long case (default 300)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed warm-up cases per side (default 20)")
    parser.add_argument("--workdir", type=Path, help="keep bench.db here instead of a temporary directory")
    args = parser.parse_args(argv)
    if args.cases < 1 or args.long_steps < 2:
        parser.error("--cases must be ≥ 1 and --long-steps ≥ 2")
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        if (args.workdir / "bench.db").exists():
            parser.error(f"{args.workdir / 'bench.db'} exists; the benchmark needs a fresh database")
        run(args.cases, args.long_steps, args.warmup, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="qifu-bench-") as tmp:
            run(args.cases, args.long_steps, args.warmup, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
