"""The supervisor's inbox, the clerk's inbox and the ledger above 65,535 open tasks, on PostgreSQL (issue #17).

psycopg refuses a statement with more than 65,535 bind parameters; the old supervisor inbox sent every
visible instance id as one, and broke exactly there. Here the open tasks are built by SQL (INSERT … SELECT
from generate_series: instance, enterprise_case, human_task, task_candidate over one real deployment) and
the read functions the pages call answer with the right total and a page of 50, due first.

The expected totals and pages are computed in Python from the same formulas the SQL uses, not read back
from the database. The plans of the paged queries are printed (``-s``, or with a failure); the ledger's and
the inbox's must take their order from an index (the inbox's from the expression index
``ix_human_task_due_order`` on ``(due_at IS NULL, due_at, id)``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text

from engine import db
from engine.process_engine import ProcessEngine
from web.auth import CurrentUser
from web.models import User, UserRole
from web.read.inbox import InboxFilters, inbox
from web.read.ledger import LedgerQuery, ledger_page
from web.scope import visible_cases

from .conftest import WEB_DIAGRAM

PAN_AN = 72_000       # open cases of Pan'an, one open task each: more tasks than bind parameters allowed
FENGHUA = 1_500       # another region's cases: never in a Pan'an inbox or ledger
TOTAL = PAN_AN + FENGHUA
OTHER_STATION = 20    # every 20th Pan'an case belongs to station PA02, not the clerk's PA01
NO_DEADLINE = 97      # every 97th task has no due date (listed last)
DUE_STEP, RECEIVED_STEP = 7919, 104_729  # primes: due and receipt instants are permutations of the cases
GROUP = "综合受理板块"

# i = 1..TOTAL; the same expressions give the SQL and the expectations below.
_BUILD = """
CREATE TEMP TABLE scale AS
SELECT i, 'SC-' || lpad(i::text, 6, '0') AS business_key,
       CASE WHEN i <= :pan_an THEN 'pan_an' ELSE 'fenghua' END AS region,
       CASE WHEN i > :pan_an THEN 'FH-CENTRE' WHEN i % :other = 0 THEN 'PA02' ELSE 'PA01' END AS unit,
       CASE WHEN i % :no_deadline = 0 THEN NULL
            ELSE CAST(:base AS timestamptz) + ((i * :due_step) % :total) * interval '1 minute' END AS due_at,
       CAST(:base AS timestamptz) - ((i * :received_step) % :total) * interval '1 second' AS received_at,
       md5(i::text)::uuid::text AS task_guid
FROM generate_series(CAST(1 AS bigint), :total) AS i;
INSERT INTO instance (deployment_id, business_key, status, state_json, data_json, version, started_at,
                      updated_at, due_at, history_seq, history_hash)
SELECT :deployment, business_key, 'running', '{}', '{"title": "规模测试"}', 1, received_at, received_at, due_at,
       0, '' FROM scale ORDER BY i;
INSERT INTO enterprise_case (instance_id, business_key, process_key, region, unit, channel, category,
                             enterprise_name, title, received_at, ledger_status, overdue, created_at, updated_at)
SELECT instance.id, scale.business_key, 'web_case', scale.region, scale.unit, 'walk_in', 'factor_power',
       '规模测试企业' || scale.i, '规模测试', scale.received_at, 'handling', false, scale.received_at, scale.received_at
FROM scale JOIN instance ON instance.business_key = scale.business_key ORDER BY scale.i;
INSERT INTO human_task (instance_id, task_guid, spec_id, name, lane, candidate_groups, assignee, due_at,
                        due_provisional, created_at)
SELECT instance.id, scale.task_guid, 'accept', '受理登记', NULL, :group, NULL, scale.due_at, false, scale.received_at
FROM scale JOIN instance ON instance.business_key = scale.business_key ORDER BY scale.i;
INSERT INTO task_candidate (task_guid, group_name) SELECT task_guid, :group FROM scale;
DROP TABLE scale;
"""


def _key(i: int) -> str:
    return f"SC-{i:06d}"


def _due(base: datetime, i: int) -> datetime | None:
    return None if i % NO_DEADLINE == 0 else base + timedelta(minutes=(i * DUE_STEP) % TOTAL)


def _received(base: datetime, i: int) -> datetime:
    return base - timedelta(seconds=(i * RECEIVED_STEP) % TOTAL)


def _inbox_order(base: datetime, cases: list[int]) -> list[str]:
    """Due first, tasks without a due date last (then by task id, i.e. by i)."""
    return [_key(i) for i in sorted(cases, key=lambda i: (_due(base, i) is None, _due(base, i) or base, i))]


def _user(username: str, unit: str, role: str) -> CurrentUser:
    row = User(id=1, username=username, unit_code=unit, password_hash="-", active=True)
    row.roles = [UserRole(role=role)]
    return CurrentUser(row, "pan_an")


@contextmanager
def _statements(url: str) -> Iterator[list[tuple[str, Any]]]:
    """The paged SELECTs sent to the database meanwhile (statement, parameters), to EXPLAIN afterwards."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and re.search(r"\bLIMIT\b", statement):
            seen.append((statement, parameters))

    target = db.get_engine(url)
    event.listen(target, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(target, "before_cursor_execute", record)


def _plan(engine: ProcessEngine, statement: str, parameters: Any) -> str:
    """EXPLAIN ANALYZE of one captured statement (timings off: the plan's shape and row counts)."""
    with engine.read() as session:
        rows = session.connection().exec_driver_sql("EXPLAIN (ANALYZE, TIMING OFF) " + statement, parameters)
        return "\n".join(r[0] for r in rows)


def _paged_by_index(plan: str) -> bool:
    """Whether an index gives the rows in the page's order: right under the Limit there is no full Sort (which
    reads and sorts every matching row); an Incremental Sort on a presorted (indexed) key is fine."""
    child = next(line for line in plan.splitlines()[1:] if line.strip().startswith("->"))
    if re.match(r"\s*->\s+Sort\b", child):
        return False
    return "Incremental Sort" not in child or "Presorted Key" in plan


def _read_pages(engine: ProcessEngine, base: datetime) -> tuple[dict[str, Any], dict[str, str]]:
    """The supervisor's inbox (first and last page), the clerk's, and the ledger, as the pages call them,
    with the plans of their paged queries (printed, so that ``-s`` or a failure shows them)."""
    calendar = engine.calendar.snapshot()
    supervisor = _user("scale_super", "PA-COUNTY", "督办")
    clerk = _user("scale_clerk", "PA01", GROUP)
    everything = InboxFilters(scope="all")
    found: dict[str, Any] = {}
    plans: dict[str, str] = {}

    def paged(name: str, sent: list[tuple[str, Any]], table: str) -> None:
        statement, parameters = sent[-1]
        assert f"FROM {table}" in statement, statement
        plans[name] = _plan(engine, statement, parameters)

    with engine.read() as session, _statements(engine.url) as sent:
        found["supervisor"] = inbox(engine, session, supervisor, everything, calendar, base)
        paged("supervisor inbox", sent, "human_task")
        found["supervisor, last page"] = inbox(engine, session, supervisor, everything, calendar, base,
                                               page=math.ceil(PAN_AN / 50))
        found["clerk"] = inbox(engine, session, clerk, InboxFilters(), calendar, base)
        paged("clerk inbox", sent, "human_task")
        query = LedgerQuery(where=visible_cases(supervisor), region="pan_an")
        found["ledger"] = ledger_page(engine, session, query, now=base)
        paged("ledger", sent, "enterprise_case")
    for name, plan in plans.items():
        print(f"\n--- EXPLAIN ANALYZE {name} ---\n{plan}")
    return found, plans


@pytest.fixture
def scale_engine(case_engine: ProcessEngine) -> ProcessEngine:
    """An engine over TOTAL open cases built by SQL in one transaction (a few seconds), then ANALYZEd so the
    planner knows the sizes."""
    engine = case_engine
    assert engine.url.startswith("postgresql")
    deployment = engine.deploy(WEB_DIAGRAM.read_bytes(), filename=WEB_DIAGRAM.name).deployment.id
    params = {"pan_an": PAN_AN, "other": OTHER_STATION, "no_deadline": NO_DEADLINE, "base": engine.clock.now(),
              "due_step": DUE_STEP, "received_step": RECEIVED_STEP, "total": TOTAL, "deployment": deployment,
              "group": GROUP}
    with engine.session() as session:
        for statement in filter(str.strip, _BUILD.split(";")):
            names = set(re.findall(r"(?<!:):(\w+)", statement))
            session.execute(text(statement), {k: v for k, v in params.items() if k in names})
    with db.get_engine(engine.url).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")
    return engine


@pytest.mark.postgres_only
def test_inboxes_and_ledger_answer_above_65535_open_tasks(scale_engine: ProcessEngine) -> None:
    base = scale_engine.clock.now()
    found, plans = _read_pages(scale_engine, base)
    pan_an = list(range(1, PAN_AN + 1))
    pa01 = [i for i in pan_an if i % OTHER_STATION != 0]
    assert len(pa01) > 65_535

    everything, last = found["supervisor"], found["supervisor, last page"]
    assert (everything.total, everything.pages, len(everything.rows)) == (PAN_AN, math.ceil(PAN_AN / 50), 50)
    order = _inbox_order(base, pan_an)
    assert [r.case.business_key for r in everything.rows] == order[:50]
    assert [r.case.business_key for r in last.rows] == order[-50:]
    assert all(r.task.due_at is None for r in last.rows)  # no due date: the very end of the list

    mine = found["clerk"]
    assert (mine.total, len(mine.rows)) == (len(pa01), 50)
    assert [r.case.business_key for r in mine.rows] == _inbox_order(base, pa01)[:50]
    assert all(r.case.scope.unit == "PA01" for r in mine.rows)

    ledger = found["ledger"]
    assert (ledger.total, len(ledger.rows)) == (PAN_AN, 50)
    newest = sorted(pan_an, key=lambda i: (_received(base, i), i), reverse=True)[:50]
    assert [r.business_key for r in ledger.rows] == [_key(i) for i in newest]
    assert [r.deadline for r in ledger.rows] == [_due(base, i) for i in newest]
    assert _paged_by_index(plans["ledger"]), plans["ledger"]  # ix_enterprise_case_region_received, backward


@pytest.mark.postgres_only
def test_inbox_pages_come_in_index_order_above_65535_open_tasks(scale_engine: ProcessEngine) -> None:
    _, plans = _read_pages(scale_engine, scale_engine.clock.now())
    for name in ("supervisor inbox", "clerk inbox"):
        assert _paged_by_index(plans[name]), f"{name}:\n{plans[name]}"
