"""``qifu workdays …``: the working-day calendar."""

from __future__ import annotations

from datetime import date

import click

from engine.calendar import load_calendar, track_provisional
from engine.errors import QifuError

from . import main, pass_state, reports_errors


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise QifuError(f"日期格式应为 YYYY-MM-DD: {text}") from None


@main.group()
def workdays() -> None:
    """Working-day calendar (Chinese statutory holidays and make-up days)."""


@workdays.command("add")
@click.argument("start")
@click.argument("n", type=int)
@pass_state
@reports_errors
def add(state, start: str, n: int) -> None:  # noqa: ANN001
    """Print the N-th working day after START (counting starts the day after START)."""
    with state.engine.session() as session:
        cal = load_calendar(session)
        with track_provisional() as tracker:
            try:
                result = cal.add_working_days(_date(start), n)
            except ValueError as exc:
                raise QifuError(str(exc)) from None
    years = sorted(tracker.years)
    state.out(result.isoformat() + (f"  (暂定 provisional: {', '.join(map(str, years))} 年官方安排未载入，按备用规则计算)"
                                    if tracker.provisional else ""),
              {"start": start, "n": n, "result": result.isoformat(), "provisional": tracker.provisional,
               "provisional_years": years})
