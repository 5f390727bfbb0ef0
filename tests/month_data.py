"""A generated month of both seed processes for the KPI and briefing tests, and the KPIs computed by hand.

:func:`generate_month` drives N cases received in one month through the real diagrams with the page
benchmark's scripts (``bench/page_data.py``: closed, late, 不满意, overdue, waiting and fresh cases, the timer
executor once a simulated day), so the rows are the ones real work leaves. :func:`by_hand` recomputes the
KPIs of ``docs/kpi.md`` from the rows in plain Python, one case at a time, as a clerk would with the ledger.
"""

from __future__ import annotations

import io
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from engine.clock import SHANGHAI, to_utc
from engine.process_engine import ProcessEngine

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ("pan_an_station", "fenghua_one_place")


def deploy_seeds(engine: ProcessEngine) -> None:
    for key in SEEDS:
        path = ROOT / "processes" / f"{key}.bpmn"
        engine.deploy(path.read_bytes(), filename=path.name, actor="test")


def generate_month(engine: ProcessEngine, month: str = "2026-08", cases: int = 40, seed: int = 15) -> None:
    """``cases`` cases received on the working days of ``month`` (both processes), run until the bench's final
    clock (2026-09-30 17:00)."""
    from bench import page_data as pd
    from engine.calendar import load_calendar

    with engine.read() as session:
        cal = load_calendar(session)
    year, mon = (int(x) for x in month.split("-"))
    first = datetime(year, mon, 1).date()
    last = (datetime(year + (mon == 12), mon % 12 + 1, 1) - timedelta(days=1)).date()
    days = pd.working_days(cal, first, last)
    rng = random.Random(seed)
    fates = {"closed": 55, "overdue": 25, "waiting": 10, "fresh": 10}
    plans = []
    for i in range(cases):
        day = rng.choice(days)
        at = datetime(day.year, day.month, day.day, 8, 30, tzinfo=SHANGHAI) + timedelta(minutes=rng.uniform(0, 540))
        plans.append(pd.Plan(to_utc(at), i, pd.PA if i % 2 else pd.FH, pd.weighted(rng, fates)))
    plans.sort()
    clock = engine.clock
    clock.set(plans[0].received)
    sim = pd.Simulation(engine, clock, cal, seed, log=io.StringIO())
    stats = sim.run(plans)
    assert stats.script_errors == 0, stats.errors


@dataclass
class Hand:
    received: int = 0
    received_answered: int = 0
    answered: int = 0
    on_time: int = 0
    days: list[int] = field(default_factory=list)
    overdue_open: int = 0
    ratings: int = 0
    good: int = 0
    answered_rated: int = 0
    reminders: int = 0
    supervisions: int = 0


def by_hand(engine: ProcessEngine, start: datetime, end: datetime, region: str | None = None) -> tuple[Hand, dict[str, Hand]]:
    """(total, per unit) of the KPIs, from every row of the ledger tables, one case at a time."""
    from handlers.models import CaseUnit, EnterpriseCase, Rating, Supervision

    def within(at: datetime | None) -> bool:
        return at is not None and start <= to_utc(at) < end

    with engine.read() as s:
        cases = [c for c in s.scalars(select(EnterpriseCase)) if region is None or c.region == region]
        units: dict[int, set[str]] = defaultdict(set)
        for cu in s.scalars(select(CaseUnit)):
            if cu.role in ("handling", "co_handling"):
                units[cu.case_id].add(cu.unit_code)
        ratings: dict[int, list[Any]] = defaultdict(list)
        for r in s.scalars(select(Rating)):
            ratings[r.case_id].append((to_utc(r.at), r.value))
        sups: dict[int, list[Any]] = defaultdict(list)
        for sup in s.scalars(select(Supervision)):
            sups[sup.case_id].append((to_utc(sup.at), sup.kind, sup.unit_code))
        total, per = Hand(), defaultdict(Hand)
        for c in cases:
            targets = [total, *(per[u] for u in (units.get(c.id) or {c.unit}))]
            for h in targets:
                if within(c.received_at):
                    h.received += 1
                    h.received_answered += c.answered_at is not None and to_utc(c.answered_at) < end
                if within(c.answered_at):
                    h.answered += 1
                    h.on_time += not c.answered_late
                    if c.answered_working_days is not None:
                        h.days.append(c.answered_working_days)
                    h.answered_rated += bool(ratings.get(c.id))
                open_at_end = ((c.answered_at is None or to_utc(c.answered_at) >= end)
                               and (c.closed_at is None or to_utc(c.closed_at) >= end))
                if to_utc(c.received_at) < end and open_at_end and any(at < end for at, _, _ in sups.get(c.id, [])):
                    h.overdue_open += 1
                for at, value in ratings.get(c.id, []):
                    if start <= at < end:
                        h.ratings += 1
                        h.good += value in ("满意", "基本满意")
            events = {(at, kind) for at, kind, _ in sups.get(c.id, []) if start <= at < end}
            total.reminders += sum(k == "催办" for _, k in events)
            total.supervisions += sum(k == "督办" for _, k in events)
            for _at, kind, code in {x for x in sups.get(c.id, []) if start <= x[0] < end and x[2]}:
                per[code].reminders += kind == "催办"
                per[code].supervisions += kind == "督办"
    return total, dict(per)
