"""``qifu workdays …``: the working-day calendar (format, rules and settings: ``docs/calendar.md``).

- ``add START N``: the N-th working day after START, flagged provisional when a year without an official
  schedule was consulted;
- ``show YYYY-MM``: a month as the engine counts it;
- ``set DATE work|rest``: an administrator's correction of one day;
- ``import FILE``: load an official schedule for a year, then recompute the open provisional deadlines;
- ``recompute [--all]``: recompute deadlines again (after ``set``, or to finish an interrupted import).

Exit status: 0 done; 2 refused, nothing changed; 1 the calendar changed but some deadlines could not be
recomputed (they are listed; run ``qifu workdays recompute`` again).

``set``, ``import`` and ``recompute`` make their changes through :mod:`web.admin`, as the calendar admin page
does, so each is recorded in the admin log.
"""

from __future__ import annotations

import re
import sys
from datetime import date
from typing import Any

import click

from engine.calendar import track_provisional
from engine.clock import SHANGHAI, to_utc
from engine.errors import QifuError
from engine.management import RecomputeReport
from engine.schedule_file import import_source, read_schedule_file

from . import main, pass_state, reports_errors

WEEKDAYS = "一二三四五六日"
FALLBACK_RULE = ("周一至周五上班，法定节假日休息（1月1日、5月1–2日、10月1–3日，按农历和节气推算的春节除夕至初三、"
                 "清明、端午、中秋）；调休未知")
DAY_KINDS = {"work": True, "班": True, "rest": False, "休": False}


def _date(text: str) -> date:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
        raise QifuError(f"日期格式应为 YYYY-MM-DD: {text}")
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise QifuError(f"日期格式应为 YYYY-MM-DD: {text}") from None


def _local(iso: str) -> str:
    return to_utc(iso).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


@main.group()
def workdays() -> None:
    """Working-day calendar (Chinese statutory holidays and make-up days)."""


@workdays.command("add")
@click.argument("start")
@click.argument("n", type=int)
@pass_state
@reports_errors
def add(state, start: str, n: int) -> None:
    """Print the N-th working day after START (counting starts the day after START)."""
    cal = state.engine.calendar.snapshot()
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


@workdays.command("show")
@click.argument("month")
@pass_state
@reports_errors
def show(state, month: str) -> None:
    """Print MONTH (YYYY-MM) with rest (休) and make-up working (班) days and the year's status."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", month.strip())
    if not match:
        raise QifuError(f"月份格式应为 YYYY-MM: {month}")
    view = state.engine.calendar.month(int(match.group(1)), int(match.group(2)))
    data = {"month": f"{view.year}-{view.month:02d}", "official": view.official, "provisional": not view.official,
            "year_source": view.year_source,
            "days": [{"date": d.day.isoformat(), "workday": d.is_workday, "note": d.note, "source": d.source}
                     for d in view.days]}
    if view.official:
        status = f"{view.year} 年: 官方安排 (来源 {view.year_source})"
    else:
        status = f"{view.year} 年: 暂无官方安排，按备用规则计算，结果为暂定 (provisional)。备用规则: {FALLBACK_RULE}"
        if view.year_source == "admin":
            status += "；个别日期已由管理员设置"
    lines = [f"{view.year}年{view.month}月", status, " ".join(f"  {w}" for w in WEEKDAYS)]
    week = ["    "] * view.days[0].day.weekday()
    for d in view.days:
        mark = "休" if not d.is_workday else ("班" if d.day.weekday() >= 5 else "  ")
        week.append(f"{d.day.day:>2}{mark}")
        if len(week) == 7:
            lines.append(" ".join(week).rstrip())
            week = []
    if week:
        lines.append(" ".join(week).rstrip())
    lines.append("休 = 休息日，班 = 周末调休上班，其余为工作日")
    for d in view.days:
        weekend = d.day.weekday() >= 5
        if d.note or d.source == "admin" or weekend == d.is_workday:
            note = d.note or ("调休上班" if d.is_workday else "放假" if not weekend else "")
            if not view.official and d.source is None and not d.is_workday and not weekend:
                note = d.note or "法定节假日 (备用规则)"
            admin = " [管理员设置]" if d.source == "admin" else ""
            lines.append(f"  {d.day:%m-%d} 周{WEEKDAYS[d.day.weekday()]} {'班' if d.is_workday else '休'}"
                         f" {note}{admin}".rstrip())
    state.out("\n".join(lines), data)


@workdays.command("set")
@click.argument("day")
@click.argument("kind")
@click.option("--note", help="说明, e.g. 国庆节 / 调休上班 (≤ 100 字)")
@click.option("--actor", default="cli", help="who made the change (shown in the output)")
@pass_state
@reports_errors
def set_(state, day: str, kind: str, note: str | None, actor: str) -> None:
    """Set DAY (YYYY-MM-DD) to work or rest. Existing deadlines stay until `qifu workdays recompute --all`."""
    if kind.strip().lower() not in DAY_KINDS:
        raise QifuError(f"类型应为 work (上班) 或 rest (休息): {kind}")
    from web import admin

    working = DAY_KINDS[kind.strip().lower()]
    when = _date(day)
    official = admin.apply_day(state.engine, when, working, note, actor=actor, recompute=False).official
    status = (f"{when.year} 年为官方安排" if official
              else f"{when.year} 年尚无官方安排，其他日期仍按备用规则，涉及该年的期限仍为暂定")
    state.out(f"{when} (周{WEEKDAYS[when.weekday()]}) 已设为{'工作日' if working else '休息日'}"
              f"{f' ({note.strip()})' if note else ''}，由 {actor} 设置 (source admin)。{status}。\n"
              f"已有期限不会自动调整；如需按新日历重算，运行 qifu workdays recompute --all",
              {"date": when.isoformat(), "workday": working, "note": note, "official": official, "actor": actor})


def _print_recompute(state: Any, report: RecomputeReport, head: dict[str, Any], lines: list[str]) -> None:
    """Report moved deadlines, deadlines that only lost their provisional flag, and failures."""
    still = state.engine.management.count_waiting(provisional=True)
    moved = report.moved
    confirmed = [c for c in report.changes if c["from"] == c["to"]]
    lines.append(f"重新计算期限: 检查 {report.checked} 个，期限调整 {len(moved)} 个，"
                 f"期限不变但取消暂定 {sum(not c['provisional'] for c in confirmed)} 个。")
    for c in moved:
        flag = "正式" if not c["provisional"] else "仍为暂定"
        lines.append(f"  {c['business_key']}  {c['element']}  {_local(c['from'])} → {_local(c['to'])}  ({flag})")
    for c in confirmed:
        lines.append(f"  {c['business_key']}  {c['element']}  {_local(c['to'])} 不变"
                     f"  ({'暂定 → 正式' if not c['provisional'] else '正式 → 暂定'})")
    if still:
        lines.append(f"仍有 {still} 个暂定期限 (涉及尚未载入官方安排的年度)。")
    data = {**head, "checked": report.checked, "moved": len(moved), "changes": report.changes,
            "failures": report.failures, "still_provisional": still}
    state.out("\n".join(lines), data)
    if report.failures:
        for f in report.failures:
            click.echo(f"未能重新计算定时器 #{f['timer']}: {f['error']}", err=True)
        click.echo("日历已更新；请稍后运行 qifu workdays recompute 处理上述期限。", err=True)
        sys.exit(1)


@workdays.command("import")
@click.argument("file")
@click.option("--actor", default="cli", help="recorded in each recomputed case's history")
@pass_state
@reports_errors
def import_(state, file: str, actor: str) -> None:
    """Load an official schedule FILE (format: docs/calendar.md) and recompute provisional deadlines.

    The file is validated completely and the year written in one transaction before any deadline moves; a
    bad file changes nothing (exit 2).
    """
    from web import admin

    schedule = read_schedule_file(file)
    applied = admin.apply_import(state.engine, schedule, source=import_source(file), actor=actor)
    result = applied.import_result
    lines = [f"已载入 {result.year} 年官方作息安排 (来源 {result.source})：全年 {result.days} 天，休息日 "
             f"{result.rest_days} 天；文件列出放假 {result.holidays} 天、调休上班 {result.makeup_days} 天。"]
    if result.replaced:
        lines.append(f"替换了原有的官方安排 ({result.replaced})，因此检查全部等待中的期限。")
    _print_recompute(state, applied.report, {"year": result.year, "source": result.source, "days": result.days,
                                     "rest_days": result.rest_days, "holidays": result.holidays,
                                     "makeup_days": result.makeup_days, "replaced": result.replaced}, lines)


@workdays.command("recompute")
@click.option("--all", "everything", is_flag=True, help="every waiting deadline, not only provisional ones")
@click.option("--actor", default="cli", help="recorded in each recomputed case's history")
@pass_state
@reports_errors
def recompute(state, everything: bool, actor: str) -> None:
    """Recompute waiting deadlines against the calendar as it is now (provisional ones unless --all)."""
    from web import admin

    report = admin.recompute_deadlines(state.engine, reason="按当前工作日历重新计算", actor=actor,
                                       everything=everything)
    _print_recompute(state, report, {"all": everything}, [])
