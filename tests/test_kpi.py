"""KPIs per unit and period (web/read/kpi.py, docs/kpi.md): SQL aggregates against the same figures computed by
hand from the ledger rows, on a generated month of both seed processes (FH-10, PA-9)."""

from __future__ import annotations

import pytest

from engine.errors import QifuError
from tests.month_data import by_hand, deploy_seeds, generate_month
from web.read import kpi


@pytest.fixture
def month(case_engine):
    deploy_seeds(case_engine)
    generate_month(case_engine, "2026-08", cases=40)
    return case_engine


def test_periods() -> None:
    p = kpi.parse_period("2026-10")
    assert (p.kind, p.first.isoformat(), p.last.isoformat(), p.label) == ("month", "2026-10-01", "2026-10-31", "2026年10月")
    assert p.start.isoformat() == "2026-09-30T16:00:00+00:00" and p.end.isoformat() == "2026-10-31T16:00:00+00:00"
    q = kpi.parse_period("2026-Q4")
    assert (q.first.isoformat(), q.last.isoformat(), q.label) == ("2026-10-01", "2026-12-31", "2026年第4季度")
    assert kpi.parse_period("2026").last.isoformat() == "2026-12-31"
    r = kpi.parse_period("2026-10-08~2026-10-09")
    assert (r.kind, r.first.isoformat(), r.last.isoformat()) == ("range", "2026-10-08", "2026-10-09")
    for bad in ("2026-13", "2026-Q5", "10/2026", "2026-10-09~2026-10-01", "", "2026-02-30~2026-03-01"):
        with pytest.raises(QifuError):
            kpi.parse_period(bad)


@pytest.mark.req("FH-10", "PA-9")
@pytest.mark.parametrize("region", [None, "pan_an", "fenghua"])
def test_kpis_match_a_hand_count_of_a_generated_month(month, region) -> None:
    period = kpi.parse_period("2026-08")
    with month.read() as s:
        report = kpi.kpis(s, period, region)
    hand, per = by_hand(month, period.start, period.end, region)
    t = report.total
    assert t.received == hand.received and t.received > 0
    assert (t.received_answered, t.answered, t.answered_on_time) == (hand.received_answered, hand.answered,
                                                                     hand.on_time)
    assert t.overdue_open == hand.overdue_open
    assert (t.ratings, t.satisfied + t.basically_satisfied, t.answered_rated) == (hand.ratings, hand.good,
                                                                                  hand.answered_rated)
    assert (t.reminders, t.supervisions) == (hand.reminders, hand.supervisions)
    if hand.days:
        assert t.average_working_days == round(sum(hand.days) / len(hand.days), 2)
    rows = {r.unit: r for r in report.rows}
    assert set(rows) == {u for u, h in per.items() if any((h.received, h.answered, h.ratings, h.overdue_open,
                                                            h.reminders, h.supervisions, h.received_answered))}
    for code, h in per.items():
        if code not in rows:
            continue
        r = rows[code]
        assert (r.received, r.received_answered, r.answered, r.answered_on_time, r.overdue_open, r.ratings,
                r.answered_rated, r.reminders, r.supervisions) == (
            h.received, h.received_answered, h.answered, h.on_time, h.overdue_open, h.ratings, h.answered_rated,
            h.reminders, h.supervisions), code
        assert r.completion_rate == (round(h.received_answered / h.received, 4) if h.received else None)


@pytest.mark.req("PA-9")
def test_revisit_rules_of_a_generated_month(month) -> None:
    from sqlalchemy import select

    from handlers.models import RevisitDraw

    period = kpi.parse_period("2026-08")
    with month.read() as s:
        rules = kpi.kpis(s, period, "pan_an").revisit_rules
        draws = [d for d in s.scalars(select(RevisitDraw)) if period.start <= d.drawn_at.astimezone(period.start.tzinfo)
                 < period.end]
    general = [d for d in draws if d.kind == "general"]
    assert rules[0].cases == len({d.case_id for d in general})
    assert rules[0].selected == sum(d.selected for d in general)
    assert rules[1].cases == len({d.case_id for d in draws if d.kind != "general"})
    assert rules[1].selected == rules[1].cases  # every difficult problem and complaint is drawn
    for rule in rules:
        assert rule.met is None or rule.met == (rule.revisited >= -(-int(rule.required * 100) * rule.cases // 100))
