"""Steps both scenario files take: look up a case's open tasks, complete one by its diagram id, and the
instant a working-day deadline ends."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from engine.clock import to_utc
from engine.models import HumanTask
from engine.process_engine import ProcessEngine


def end_of_day(day: str) -> datetime:
    """23:59:59 Asia/Shanghai of ``day``: where a working-day deadline ends."""
    return to_utc(f"{day}T23:59:59")


def open_tasks(engine: ProcessEngine, iid: int) -> list[HumanTask]:
    with engine.session() as s:
        rows = list(s.scalars(select(HumanTask).where(HumanTask.instance_id == iid).order_by(HumanTask.id)))
        s.expunge_all()
        return rows


def the_task(engine: ProcessEngine, iid: int, spec_id: str) -> HumanTask:
    """The one open task of ``spec_id`` (fails, naming what is open, if there is not exactly one)."""
    rows = [t for t in open_tasks(engine, iid) if t.spec_id == spec_id]
    assert len(rows) == 1, f"expected one open {spec_id}, open: {[t.spec_id for t in open_tasks(engine, iid)]}"
    return rows[0]


def complete(engine: ProcessEngine, iid: int, spec_id: str, data: dict[str, Any] | None = None,
             actor: str = "clerk") -> None:
    engine.runtime.complete_task(the_task(engine, iid, spec_id).task_guid, data or {}, actor=actor)


def answer(engine: ProcessEngine, iid: int, data: dict[str, Any], actor: str = "clerk",
           signer: str = "clerk") -> None:
    """The handling unit answers in 承办单位办理 and the centre approves the answer in 办结审核 (RC-3), so the
    reply goes on to the enterprise."""
    complete(engine, iid, "Task_UnitHandle", data, actor=actor)
    complete(engine, iid, "Task_SignOff", {"signoff": "approve"}, actor=signer)
