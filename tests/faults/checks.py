"""What every fault test checks afterwards, on the database itself (not a test module).

- every acknowledged intake (HTTP 201/200) has its case, exactly one per Idempotency-Key, and nothing else
  was created: no case without its idempotency record or enterprise row, none twice;
- every case is whole: all cases submitted with the same body have the same shape (events, open tasks,
  waiting timers, the instance's history head) as the first one, so none stopped half-way;
- every timer that fell due fired exactly once (one ``timer_fired`` event per timer row and occurrence);
- ``qifu audit verify`` passes; on SQLite ``PRAGMA integrity_check`` says ``ok``.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select

from engine import history
from engine.models import Event, HumanTask, Instance, Timer
from engine.process_engine import ProcessEngine

from .procs import qifu


def case_shape(engine: ProcessEngine, instance_id: int) -> tuple[Any, ...]:
    """What a case looks like after its steps: enough to tell a whole case from one stopped half-way."""
    with engine.read() as s:
        inst = s.get(Instance, instance_id)
        actions = [e.action for e in history.events_for(s, instance_id)]
        tasks = sorted(s.scalars(select(HumanTask.spec_id).where(HumanTask.instance_id == instance_id)))
        timers = sorted(s.scalars(select(Timer.spec_id).where(Timer.instance_id == instance_id,
                                                              Timer.status == "waiting")))
        return inst.status, inst.history_seq == len(actions), tuple(actions), tuple(tasks), tuple(timers)


def assert_intake_whole(engine: ProcessEngine, submitted: Iterable[str], acked: dict[str, str]) -> None:
    """``acked`` maps each acknowledged Idempotency-Key to the business key its answer named."""
    from handlers.models import EnterpriseCase
    from web.intake_models import IdempotencyRecord

    submitted = set(submitted)
    with engine.read() as s:
        records = {r.key: r.business_key for r in s.scalars(select(IdempotencyRecord))}
        fenghua = dict(s.execute(select(Instance.business_key, Instance.id)
                                 .where(Instance.business_key.like("FH-%"))).all())
        enterprise = set(s.scalars(select(EnterpriseCase.business_key).where(EnterpriseCase.business_key
                                                                             .like("FH-%"))))
    missing = {k: bk for k, bk in acked.items() if records.get(k) != bk}
    assert not missing, f"acknowledged submissions lost or changed: {missing}"
    assert set(records) <= submitted, f"records for keys never sent: {set(records) - submitted}"
    assert sorted(records.values()) == sorted(fenghua), "a case without its idempotency record, or one twice"
    assert enterprise == set(fenghua), "an instance without its enterprise case row, or the other way round"
    shapes = Counter(case_shape(engine, iid) for iid in fenghua.values())
    assert len(shapes) == 1, f"cases stopped half-way (shapes differ): {shapes}"


def assert_timers_fired_once(engine: ProcessEngine, business_keys: Iterable[str]) -> None:
    """Each case of ``fault_timer`` started (acknowledged) had its timer fire exactly once and moved on."""
    keys = list(business_keys)
    with engine.read() as s:
        ids = dict(s.execute(select(Instance.business_key, Instance.id).where(Instance.business_key.in_(keys))).all())
        assert set(ids) == set(keys), f"acknowledged starts lost: {set(keys) - set(ids)}"
        rows = list(s.execute(select(Timer.id, Timer.instance_id, Timer.status, Timer.occurrence)
                              .where(Timer.instance_id.in_(ids.values()))))
        fired_events = Counter()
        for event_row in s.scalars(select(Event).where(Event.action == "timer_fired")):
            details = history.StepEvent.from_row(event_row).details
            fired_events[(details["timer"], details.get("occurrence", 1))] += 1
        open_after = Counter(s.scalars(select(HumanTask.instance_id).where(HumanTask.instance_id.in_(ids.values()),
                                                                           HumanTask.spec_id == "after")))
        total_fired = s.scalar(select(func.count()).select_from(Timer).where(Timer.status == "fired"))
    doubled = {k: n for k, n in fired_events.items() if n != 1}
    assert not doubled, f"timers fired more than once: {doubled}"
    assert len(rows) == len(keys), f"one timer row per case expected, got {len(rows)} for {len(keys)} cases"
    not_fired = [r for r in rows if r.status != "fired" or fired_events[(r.id, r.occurrence)] != 1]
    assert not not_fired, f"timers lost (due, never fired): {not_fired}"
    assert all(open_after[iid] == 1 for iid in ids.values()), f"cases that did not move on once: {open_after}"
    assert total_fired == sum(fired_events.values()), "a fired timer row without its timer_fired event"


def assert_audit_verifies(env: dict[str, str]) -> None:
    """``qifu audit verify``, the command an auditor runs, over the same database."""
    done = qifu(["audit", "verify"], env)
    assert done.returncode == 0, f"qifu audit verify failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    assert "历史记录完整" in done.stdout, done.stdout


def sqlite_integrity(path: str, *, immutable: bool = False) -> str:
    """``PRAGMA integrity_check`` through a read-only connection (it must not need to write to tell);
    ``immutable`` for a file nobody can write just now (a read-only directory has no room for its -shm)."""
    conn = sqlite3.connect(f"file:{path}?{'immutable=1' if immutable else 'mode=ro'}", uri=True)
    try:
        return "; ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()
