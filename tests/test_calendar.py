"""The working-day calendar: counting, the fallback rule, provisional answers, and official schedules.

Scenario tests drive the ``qifu`` CLI (as an administrator would) against the per-test database; each runs
on SQLite and, when ``QIFU_TEST_PG_URL`` is set, on PostgreSQL. The import scenarios check the three things
an import promises: the year becomes official, open provisional deadlines move (with a history event), and
a bad file changes nothing at all.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from engine import calendar, history, schedule_file
from engine.calendar import CalendarSettings, WorkdayCalendar, fallback_is_workday, track_provisional
from engine.clock import FixedClock, to_utc
from engine.errors import QifuError
from engine.models import CalendarYear, Event, HumanTask, Instance, Timer, Workday
from engine.process_engine import ProcessEngine
from tests.conftest import diagram
from web.cli import main

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "schedule-2027.csv"

# The 2027 schedule the scenarios import (the same days as docs/examples/schedule-2027.csv, kept here so the
# tests do not change when the example is replaced by the real notice). What matters: 1–3 January off, so a
# 5-working-day deadline from 2026-12-28 stays 2027-01-05; Spring Festival 5–13 February off with make-up
# Sunday 31 January, so a 30-working-day deadline moves from 2027-02-11 (fallback: 除夕 to 初三 only) to 2027-02-16.
SCHEDULE_2027 = """\
# 2027 年部分节假日安排 (测试用)
year=2027
date,type,note
2027-01-01,holiday,元旦
2027-01-02,holiday,元旦
2027-01-03,holiday,元旦
2027-01-31,workday,调休上班 (春节)
2027-02-05,holiday,春节
2027-02-06,holiday,春节
2027-02-07,holiday,春节
2027-02-08,holiday,春节
2027-02-09,holiday,春节
2027-02-10,holiday,春节
2027-02-11,holiday,春节
2027-02-12,holiday,春节
2027-02-13,holiday,春节
2027-02-20,workday,调休上班 (春节)
2027-04-03,holiday,清明
2027-04-04,holiday,清明
2027-04-05,holiday,清明
2027-04-25,workday,调休上班 (劳动节)
2027-05-01,holiday,劳动节
2027-05-02,holiday,劳动节
2027-05-03,holiday,劳动节
2027-05-04,holiday,劳动节
2027-05-05,holiday,劳动节
2027-06-09,holiday,端午
2027-09-15,holiday,中秋
2027-09-26,workday,调休上班 (国庆节)
2027-10-01,holiday,国庆节
2027-10-02,holiday,国庆节
2027-10-03,holiday,国庆节
2027-10-04,holiday,国庆节
2027-10-05,holiday,国庆节
2027-10-06,holiday,国庆节
2027-10-07,holiday,国庆节
2027-10-09,workday,调休上班 (国庆节)
"""


# --- helpers ---------------------------------------------------------------------------------------------
def qifu(db_url: str, *args: str) -> Result:
    """Run ``qifu ARGS`` against the test database, as an administrator would from the shell."""
    return CliRunner().invoke(main, list(args), env={"QIFU_DATABASE_URL": db_url}, catch_exceptions=False)


def local_end(day: str) -> datetime:
    """The instant a deadline on ``day`` ends under the default settings (23:59:59 Asia/Shanghai)."""
    return to_utc(f"{day}T23:59:59")


def db_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def write(tmp_path: Path, text: str | bytes, name: str = "schedule-2027.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def start_cases(engine: ProcessEngine, clock: FixedClock) -> dict[str, int]:
    """Two cases received on Monday 2026-12-28: 5 and 30 working days to handle them."""
    engine.deploy(diagram("workday_deadline.bpmn"), filename="workday_deadline.bpmn")
    clock.set("2026-12-28T10:00:00")
    ids = {}
    for key, days in (("WD-5", 5), ("WD-30", 30)):
        result = engine.runtime.start("workday_deadline", key, {"received_at": "2026-12-28T09:30:00", "days": days},
                                      actor="clerk")
        ids[key] = result.instance_id
    return ids


def timer_of(engine: ProcessEngine, instance_id: int) -> Timer:
    with engine.session() as s:
        row = s.scalar(select(Timer).where(Timer.instance_id == instance_id, Timer.status == "waiting"))
        assert row is not None
        s.expunge(row)
        return row


def task_of(engine: ProcessEngine, instance_id: int) -> HumanTask:
    with engine.session() as s:
        row = s.scalar(select(HumanTask).where(HumanTask.instance_id == instance_id))
        assert row is not None
        s.expunge(row)
        return row


def snapshot(engine: ProcessEngine) -> dict[str, Any]:
    """Everything an import could touch: calendar rows, years, timers, tasks and history."""
    with engine.session() as s:
        return {
            "workdays": s.execute(select(Workday.day, Workday.is_workday, Workday.note, Workday.source)
                                  .order_by(Workday.day)).all(),
            "years": s.execute(select(CalendarYear.year, CalendarYear.source, CalendarYear.loaded_at)
                               .order_by(CalendarYear.year)).all(),
            "timers": s.execute(select(Timer.id, Timer.due_at, Timer.provisional, Timer.status)
                                .order_by(Timer.id)).all(),
            "tasks": s.execute(select(HumanTask.id, HumanTask.due_at, HumanTask.due_provisional)
                               .order_by(HumanTask.id)).all(),
            "events": s.scalar(select(func.count(Event.id))),
        }


# --- counting and the fallback rule -----------------------------------------------------------------------
@pytest.mark.req("WD-1")
def test_add_counts_the_make_up_saturday(db_url: str) -> None:
    result = qifu(db_url, "workdays", "add", "2026-09-30", "3")
    assert result.exit_code == 0, result.output
    assert result.output == "2026-10-10\n"  # 8, 9 October, then the make-up Saturday; not provisional
    result = qifu(db_url, "workdays", "add", "2026-09-30", "2")
    assert result.output == "2026-10-09\n"


@pytest.mark.req("WD-1")
def test_add_into_a_year_without_schedule_is_provisional(db_url: str) -> None:
    result = qifu(db_url, "workdays", "add", "2026-12-28", "5")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("2027-01-05")  # 29, 30, 31 Dec; 1 Jan is off by the fallback rule; 4, 5 Jan
    assert "暂定" in result.output and "provisional" in result.output and "2027" in result.output
    data = json.loads(qifu(db_url, "--json", "workdays", "add", "2026-12-28", "5").output)
    assert data == {"start": "2026-12-28", "n": 5, "result": "2027-01-05", "provisional": True,
                    "provisional_years": [2027]}
    # within an official year nothing is provisional
    data = json.loads(qifu(db_url, "--json", "workdays", "add", "2026-09-30", "3").output)
    assert data["provisional"] is False and data["provisional_years"] == []


def test_add_refuses_bad_input(db_url: str) -> None:
    for args in (["2026-9-30", "3"], ["2026-02-30", "3"], ["2026-09-30", "-1"], ["2026-09-30", "99999"]):
        result = qifu(db_url, "workdays", "add", "--", *args)
        assert result.exit_code == 2, (args, result.output)
        assert "错误" in result.stderr


@pytest.mark.req("WD-1")
def test_fallback_rule() -> None:
    """Mon–Fri except the statutory holidays computable in advance (fixed dates, lunar dates, 清明)."""
    assert not fallback_is_workday(date(2027, 1, 1))  # Friday, New Year
    assert not fallback_is_workday(date(2027, 1, 2))  # Saturday
    assert fallback_is_workday(date(2027, 1, 4))  # Monday
    assert not fallback_is_workday(date(2027, 2, 8))  # Monday, 初三 of the Spring Festival (lunar, RC-10)
    assert [fallback_is_workday(date(2027, 5, d)) for d in (1, 2, 3)] == [False, False, True]
    assert [fallback_is_workday(date(2027, 10, d)) for d in (1, 4)] == [False, True]
    assert not fallback_is_workday(date(2028, 5, 2))  # Tuesday, Labour Day (2 days since 2025)
    assert not fallback_is_workday(date(2028, 10, 3))  # Tuesday, National Day

    cal = WorkdayCalendar({date(2026, 12, d): True for d in (29, 30, 31)}, [2026], CalendarSettings())
    with track_provisional() as tracker:
        assert cal.add_working_days(date(2026, 12, 29), 1) == date(2026, 12, 30)
    assert not tracker.provisional  # only official days looked at
    with track_provisional() as tracker:
        assert cal.add_working_days(date(2026, 12, 30), 2) == date(2027, 1, 4)
    assert tracker.provisional and tracker.years == {2027}


def test_settings_are_validated_and_applied() -> None:
    from engine.settings import EngineSettings, read

    def settings(**env: str) -> CalendarSettings:
        return CalendarSettings.from_settings(read(EngineSettings, env))

    assert settings() == CalendarSettings(True, time(23, 59, 59))
    days = {date(2026, 9, 30): True, date(2026, 10, 8): True, date(2026, 10, 9): True}
    same_day = settings(QIFU_COUNT_FROM="same_day", QIFU_DEADLINE_END_OF_DAY="18:00")
    cal = WorkdayCalendar({**days, **{date(2026, 10, d): False for d in range(1, 8)}}, [2026], same_day)
    assert cal.add_working_days(date(2026, 9, 30), 1) == date(2026, 9, 30)  # the day of receipt counts
    assert cal.add_working_days(date(2026, 9, 30), 2) == date(2026, 10, 8)
    assert cal.deadline("2026-09-30T10:00:00", 1) == to_utc("2026-09-30T18:00:00")
    with pytest.raises(QifuError, match="QIFU_COUNT_FROM"):
        settings(QIFU_COUNT_FROM="sameday")
    with pytest.raises(QifuError, match="QIFU_DEADLINE_END_OF_DAY"):
        settings(QIFU_DEADLINE_END_OF_DAY="six pm")


# --- the schedule file -------------------------------------------------------------------------------------
def test_example_schedule_file_is_valid() -> None:
    schedule = schedule_file.read_schedule_file(EXAMPLE)
    assert schedule.year == 2027
    ours = schedule_file.parse_schedule(SCHEDULE_2027)  # the tests import the days of the documented example
    assert {d: (e.is_workday, e.note) for d, e in schedule.special.items()} == \
        {d: (e.is_workday, e.note) for d, e in ours.special.items()}
    rows = schedule.rows("import:x")
    assert len(rows) == 365
    by_day = {r["day"]: r for r in rows}
    assert by_day[date(2027, 1, 31)]["is_workday"] and by_day[date(2027, 1, 31)]["note"] == "调休上班 (春节)"
    assert not by_day[date(2027, 2, 8)]["is_workday"]
    assert by_day[date(2027, 2, 15)] == {"day": date(2027, 2, 15), "is_workday": True, "note": None,
                                         "source": "import:x"}
    assert not by_day[date(2027, 2, 14)]["is_workday"]  # an unlisted Sunday


def test_schedule_accepts_bom_comments_quotes_and_chinese_types() -> None:
    text = "\ufeff# 注释\n\nyear = 2027\n" + "\n".join(
        f'{d},休,"元旦, 放假"' for d in ("2027-01-01", "2027-05-01", "2027-05-02")) + "\n" + "\n".join(
        f"{d},holiday" for d in ("2027-10-01", "2027-10-02", "2027-10-03")) + "\n2027-01-31,班\n"
    schedule = schedule_file.parse_schedule(text)
    assert schedule.special[date(2027, 1, 1)].note == "元旦, 放假"
    assert schedule.special[date(2027, 1, 31)].is_workday
    assert schedule.special[date(2027, 10, 1)].note is None


# --- importing --------------------------------------------------------------------------------------------
@pytest.mark.req("WD-1")
def test_import_makes_the_year_official(db_url: str, engine: ProcessEngine, tmp_path: Path) -> None:
    path = write(tmp_path, SCHEDULE_2027)
    result = qifu(db_url, "workdays", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "已载入 2027 年官方作息安排" in result.output and "import:schedule-2027.csv" in result.output

    result = qifu(db_url, "workdays", "add", "2026-12-28", "5")
    assert result.output == "2027-01-05\n"  # same day as the fallback here, but no longer provisional
    assert json.loads(qifu(db_url, "--json", "workdays", "add", "2026-12-28", "5").output)["provisional"] is False
    assert qifu(db_url, "workdays", "add", "2027-02-04", "1").output == "2027-02-15\n"  # over Spring Festival
    assert qifu(db_url, "workdays", "add", "2027-01-29", "1").output == "2027-01-31\n"  # make-up Sunday

    with engine.session() as s:
        year = s.get(CalendarYear, 2027)
        assert year is not None and year.source == "import:schedule-2027.csv"
        rows = s.execute(select(Workday.source, func.count()).where(Workday.day.between(
            date(2027, 1, 1), date(2027, 12, 31))).group_by(Workday.source)).all()
        assert rows == [("import:schedule-2027.csv", 365)]
        assert s.get(Workday, date(2027, 2, 8)).note == "春节"

    show = qifu(db_url, "workdays", "show", "2027-02")
    assert show.exit_code == 0 and "官方安排" in show.output and "暂定" not in show.output
    assert " 8休" in show.output and "20班" in show.output and "02-20 周六 班 调休上班 (春节)" in show.output


@pytest.mark.req("WD-1")
def test_import_moves_open_provisional_deadlines_with_history(db_url: str, engine: ProcessEngine,
                                                              clock: FixedClock, tmp_path: Path) -> None:
    ids = start_cases(engine, clock)
    # computed from the fallback rule: provisional on the timer row and on the task's due date
    short, long = timer_of(engine, ids["WD-5"]), timer_of(engine, ids["WD-30"])
    assert short.provisional and long.provisional
    assert db_utc(short.due_at) == local_end("2027-01-05")
    # the fallback knows the Spring Festival's statutory days (除夕 2-5 to 初三 2-8, RC-10), not the 调休
    assert db_utc(long.due_at) == local_end("2027-02-11")
    task = task_of(engine, ids["WD-30"])
    assert task.due_provisional and db_utc(task.due_at) == local_end("2027-02-11")

    result = qifu(db_url, "workdays", "import", str(write(tmp_path, SCHEDULE_2027)))
    assert result.exit_code == 0, result.output
    assert "期限调整 1 个" in result.output
    assert "WD-30  deadline  2027-02-11 23:59:59 → 2027-02-16 23:59:59  (正式)" in result.output
    assert "WD-5  deadline  2027-01-05 23:59:59 不变  (暂定 → 正式)" in result.output

    short, long = timer_of(engine, ids["WD-5"]), timer_of(engine, ids["WD-30"])
    assert not short.provisional and not long.provisional
    assert db_utc(short.due_at) == local_end("2027-01-05")
    assert db_utc(long.due_at) == local_end("2027-02-16")
    task = task_of(engine, ids["WD-30"])
    assert not task.due_provisional and db_utc(task.due_at) == local_end("2027-02-16")
    assert not task_of(engine, ids["WD-5"]).due_provisional

    with engine.session() as s:
        events = {e.instance_id: e for e in s.scalars(select(Event).where(Event.action == "deadline_recomputed"))}
        assert set(events) == {ids["WD-5"], ids["WD-30"]}
        details = json.loads(events[ids["WD-30"]].payload)["details"]
        assert details["from"] == local_end("2027-02-11").isoformat()
        assert details["to"] == local_end("2027-02-16").isoformat()
        assert details["was_provisional"] is True and details["provisional"] is False
        assert "2027" in details["reason"] and events[ids["WD-30"]].actor == "cli"
        assert history.verify(s) == []
        assert {i.status for i in s.scalars(select(Instance))} == {"running"}

    # nothing provisional is left, so running the recomputation again changes nothing
    again = qifu(db_url, "workdays", "recompute")
    assert again.exit_code == 0 and "检查 0 个" in again.output


@pytest.mark.req("WD-1")
def test_reimporting_an_official_year_rechecks_every_deadline(db_url: str, engine: ProcessEngine,
                                                              clock: FixedClock, tmp_path: Path) -> None:
    ids = start_cases(engine, clock)
    assert qifu(db_url, "workdays", "import", str(write(tmp_path, SCHEDULE_2027))).exit_code == 0
    corrected = SCHEDULE_2027.replace("2027-01-31,workday,调休上班 (春节)\n", "")  # the notice was misread
    result = qifu(db_url, "--json", "workdays", "import", str(write(tmp_path, corrected, "corrected.csv")))
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["replaced"] == "import:schedule-2027.csv" and data["moved"] == 1
    assert db_utc(timer_of(engine, ids["WD-30"]).due_at) == local_end("2027-02-17")


BAD_FILES: dict[str, tuple[str | bytes, str]] = {
    "bad date": (SCHEDULE_2027 + "2027-02-30,holiday\n", "日期无效"),
    "not ISO date": (SCHEDULE_2027 + "2027/03/01,holiday\n", "日期无效"),
    "unknown type": (SCHEDULE_2027 + "2027-03-01,vacation\n", "未知类型"),
    "duplicate date": (SCHEDULE_2027 + "2027-02-08,holiday,春节\n", "重复"),
    "outside the year": (SCHEDULE_2027 + "2026-12-31,holiday\n", "不在声明的年度 2027 内"),
    "workday on a weekday": (SCHEDULE_2027 + "2027-03-03,workday\n", "本来就是工作日"),
    "too many columns": (SCHEDULE_2027 + "2027-03-01,holiday,说明,多余\n", "列"),
    "no year line": (SCHEDULE_2027.replace("year=2027\n", ""), "缺少 year=YYYY"),
    "two year lines": (SCHEDULE_2027 + "year=2028\n", "重复的 year="),
    "bad year": (SCHEDULE_2027.replace("year=2027", "year=27"), "年份"),
    "incomplete": ("year=2027\n2027-01-01,holiday\n", "法定节假日 2027-10-01 未标为 holiday"),
    "empty": ("", "文件为空"),
    "only comments": ("# nothing yet\n\n", "文件为空"),
    "not UTF-8": (SCHEDULE_2027.encode("gbk"), "UTF-8"),
    "huge": (SCHEDULE_2027 + "# " + "x" * (schedule_file.MAX_SCHEDULE_BYTES + 10) + "\n", "文件过大"),
}


@pytest.mark.req("WD-1")
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_schedule_changes_nothing(db_url: str, engine: ProcessEngine, clock: FixedClock, tmp_path: Path,
                                      case: str) -> None:
    start_cases(engine, clock)
    before = snapshot(engine)
    content, message = BAD_FILES[case]
    result = qifu(db_url, "workdays", "import", str(write(tmp_path, content)))
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "未做任何修改" in result.stderr
    assert snapshot(engine) == before
    assert json.loads(qifu(db_url, "--json", "workdays", "add", "2026-12-28", "5").output)["provisional"] is True


def test_missing_file_is_refused(db_url: str, tmp_path: Path) -> None:
    result = qifu(db_url, "workdays", "import", str(tmp_path / "nope.csv"))
    assert result.exit_code == 2 and "不存在" in result.stderr


def test_import_is_one_transaction(db_url: str, engine: ProcessEngine, clock: FixedClock, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure after the days were written (here: marking the year) rolls the days back too."""
    start_cases(engine, clock)
    before = snapshot(engine)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise QifuError("模拟故障")

    monkeypatch.setattr(calendar, "touch_year", broken)
    result = qifu(db_url, "workdays", "import", str(write(tmp_path, SCHEDULE_2027)))
    assert result.exit_code == 2 and "模拟故障" in result.stderr
    assert snapshot(engine) == before


# --- editing single days and reading months ---------------------------------------------------------------
@pytest.mark.req("WD-1")
def test_set_a_day_takes_effect_at_once(db_url: str, engine: ProcessEngine) -> None:
    result = qifu(db_url, "workdays", "set", "2026-10-09", "rest", "--note", "临时停工")
    assert result.exit_code == 0, result.output
    assert "已设为休息日" in result.output and "2026 年为官方安排" in result.output
    assert qifu(db_url, "workdays", "add", "2026-09-30", "2").output == "2026-10-10\n"
    with engine.session() as s:
        row = s.get(Workday, date(2026, 10, 9))
        assert (row.is_workday, row.note, row.source) == (False, "临时停工", "admin")
        assert s.get(CalendarYear, 2026).source == "chinesecalendar"  # still the official schedule

    # one corrected day of an unofficial year does not make the year official
    assert qifu(db_url, "workdays", "set", "2027-01-04", "rest").exit_code == 0
    data = json.loads(qifu(db_url, "--json", "workdays", "add", "2026-12-28", "5").output)
    assert data["result"] == "2027-01-06" and data["provisional"] is True
    assert "管理员设置" in qifu(db_url, "workdays", "show", "2027-01").output

    assert qifu(db_url, "workdays", "set", "2026-10-10", "maybe").exit_code == 2
    assert qifu(db_url, "workdays", "set", "2026-10-10", "work", "--note", "长" * 101).exit_code == 2


def test_edits_reload_the_cache_even_with_a_standing_clock(db_url: str, engine: ProcessEngine) -> None:
    """Caches compare the newest loaded_at; an edit must move it even when ``now`` is older than that."""
    now = engine.clock.now()
    with engine.session() as s:
        calendar.touch_year(s, 2030, "import:x", now + timedelta(days=3650))  # a stamp far ahead
    with engine.session() as s:
        assert calendar.load_calendar(s).is_workday(date(2026, 10, 9))  # cached with that revision
    with engine.session() as s:
        calendar.set_day(s, date(2026, 10, 9), False, None, now)
    with engine.session() as s:
        assert not calendar.load_calendar(s).is_workday(date(2026, 10, 9))


@pytest.mark.req("WD-1")
def test_set_then_recompute_all_moves_deadlines(db_url: str, engine: ProcessEngine, clock: FixedClock,
                                                tmp_path: Path) -> None:
    ids = start_cases(engine, clock)
    assert qifu(db_url, "workdays", "import", str(write(tmp_path, SCHEDULE_2027))).exit_code == 0
    assert qifu(db_url, "workdays", "set", "2027-01-04", "rest", "--note", "测试").exit_code == 0
    assert db_utc(timer_of(engine, ids["WD-5"]).due_at) == local_end("2027-01-05")  # set alone moves nothing
    result = qifu(db_url, "workdays", "recompute", "--all")
    assert result.exit_code == 0, result.output
    assert "WD-5  deadline  2027-01-05 23:59:59 → 2027-01-06 23:59:59" in result.output
    assert db_utc(timer_of(engine, ids["WD-5"]).due_at) == local_end("2027-01-06")


def test_show_month(db_url: str) -> None:
    result = qifu(db_url, "workdays", "show", "2026-10")
    assert result.exit_code == 0, result.output
    assert "2026 年: 官方安排 (来源 chinesecalendar)" in result.output
    assert " 1休" in result.output and "10班" in result.output and "10-01 周四 休 国庆节" in result.output
    data = json.loads(qifu(db_url, "--json", "workdays", "show", "2026-10").output)
    assert data["official"] is True and len(data["days"]) == 31
    assert data["days"][9] == {"date": "2026-10-10", "workday": True, "note": "调休上班 (国庆节)",
                               "source": "chinesecalendar"}

    result = qifu(db_url, "workdays", "show", "2027-05")
    assert "暂定" in result.output and "备用规则" in result.output
    data = json.loads(qifu(db_url, "--json", "workdays", "show", "2027-05").output)
    assert data["provisional"] is True and [d["workday"] for d in data["days"][:4]] == [False, False, True, True]

    for bad in ("2026-13", "2026/10", "October"):
        assert qifu(db_url, "workdays", "show", bad).exit_code == 2


@pytest.mark.req("RC-10", "WD-1")
def test_the_fallback_knows_the_statutory_holidays_computable_in_advance() -> None:
    """春节 (除夕 to 初三, lunar), 清明 (the solar term), 端午 and 中秋 (lunar) besides the fixed dates; still no
    调休, so a holiday on a weekend is just a weekend and every answer stays provisional."""
    from engine.calendar import fallback_holiday

    # 2027: 春节 2-6 (Saturday) — 除夕 Friday 2-5 and 初三 Monday 2-8 are rest days, 2-9 is worked
    assert [fallback_is_workday(date(2027, 2, d)) for d in (4, 5, 8, 9)] == [True, False, False, True]
    assert fallback_holiday(date(2027, 2, 5)) == "春节" and fallback_holiday(date(2027, 2, 9)) is None
    assert not fallback_is_workday(date(2027, 4, 5))  # Monday, 清明 (the solar term falls on 4-5 in 2027)
    assert not fallback_is_workday(date(2027, 6, 9))  # Wednesday, 端午 (五月初五)
    assert not fallback_is_workday(date(2027, 9, 15))  # Wednesday, 中秋 (八月十五)
    assert fallback_is_workday(date(2027, 9, 16))
    assert fallback_holiday(date(2027, 9, 15)) == "中秋节"
    # 2028: 春节 1-26 (Wednesday): 1-25 to 1-28; 清明 4-4; 端午 5-28 is a Sunday (no make-up day known)
    assert [fallback_is_workday(date(2028, 1, d)) for d in (24, 25, 26, 27, 28, 31)] == [
        True, False, False, False, False, True]
    assert not fallback_is_workday(date(2028, 4, 4))
    assert fallback_is_workday(date(2028, 5, 29))
    cal = WorkdayCalendar({}, [], CalendarSettings())
    with track_provisional() as tracker:
        assert cal.add_working_days(date(2027, 2, 4), 3) == date(2027, 2, 11)
    assert tracker.provisional and tracker.years == {2027}


@pytest.mark.req("RC-10")
def test_office_hours_move_the_same_day_limit_of_an_after_hours_receipt() -> None:
    from engine.settings import EngineSettings, read

    days = {date(2026, 9, 29): True, date(2026, 9, 30): True, date(2026, 10, 8): True,
            **{date(2026, 10, d): False for d in range(1, 8)}}
    cal = WorkdayCalendar(days, [2026], CalendarSettings())
    assert cal.end_of_receipt_day("2026-09-29T23:30:00") == to_utc("2026-09-30T23:59:59")
    assert cal.end_of_receipt_day("2026-09-30T17:29:59") == to_utc("2026-09-30T23:59:59")
    assert cal.end_of_receipt_day("2026-09-30T17:30:00") == to_utc("2026-10-08T23:59:59")  # closing time
    assert cal.end_of_receipt_day("2026-09-30T06:00:00") == to_utc("2026-09-30T23:59:59")  # before opening
    assert cal.end_of_receipt_day("2026-10-03T10:00:00") == to_utc("2026-10-08T23:59:59")  # a holiday
    # the working-day limits count from the day after receipt as before
    assert cal.deadline("2026-09-29T23:30:00", 1) == to_utc("2026-09-30T23:59:59")
    # configurable; a wrong value is refused naming the setting
    evening = CalendarSettings.from_settings(read(EngineSettings, {"QIFU_OFFICE_HOURS": "09:00-21:00"}))
    assert (evening.office_open, evening.office_close) == (time(9), time(21))
    late = WorkdayCalendar(days, [2026], evening)
    assert late.end_of_receipt_day("2026-09-30T20:00:00") == to_utc("2026-09-30T23:59:59")
    for bad in ("17:30-08:30", "8:30", "上午", "08:30-25:00"):
        with pytest.raises(QifuError, match="QIFU_OFFICE_HOURS"):
            read(EngineSettings, {"QIFU_OFFICE_HOURS": bad})


@pytest.mark.req("RC-10", "WD-1")
def test_a_month_without_a_schedule_names_the_computed_holidays_as_provisional(db_url: str) -> None:
    show = qifu(db_url, "workdays", "show", "2027-02")
    assert show.exit_code == 0 and "暂定" in show.output, show.output
    assert "02-05 周五 休 春节（暂定）" in show.output and "02-08 周一 休 春节（暂定）" in show.output
    assert "02-09" not in show.output  # an ordinary working day again (only special days are listed)
    assert qifu(db_url, "workdays", "add", "2027-02-04", "1").output.startswith("2027-02-09")  # over 除夕–初三
