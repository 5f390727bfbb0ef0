"""The page benchmark's data: a database of N cases built only through the public paths, like a year of work.

Every case starts through :func:`handlers.intake.submit_case` and moves only by
``engine.runtime.complete_task`` (the diagrams' own forms) and ``engine.management.run_due_timers`` with a
:class:`~engine.clock.FixedClock` moved forward, so the rows behind the pages are exactly the rows real work
leaves: history events, open and historic tasks, waiting/fired timers, ledger, supervision, ratings, outbox.

**The mix.** Both seed processes, about half each. Each case draws its fate from a seeded random (the same
seed and N give the same database):

- ~50 % *closed*: driven to the end (销账) along every path of its diagram; some answered late (the deadline
  fires, 督办/催办, 挂账, then answered and closed), some rated 不满意 (Fenghua: 挂账, back into handling for a
  new round; Pan'an: the case ends carried), some not rated by the enterprise (the rating window passes).
- ~20 % *waiting*: transferred and being handled, with deadlines after the final clock (an agreed completion
  date, a leader's plan, Pan'an's 30-day plan, or a transfer in the last days), so timers are still waiting.
- ~15 % *overdue*: left at a handling task; the deadline passes, the timer fires, 督办/挂账.
- the rest *fresh*: just received, nobody has touched them yet.
- one *long* case per 20,000 (at least one): a Fenghua joint case reporting progress every week all year
  (the cycle timer fires, the unit reports), many events — the case page's worst case.

**Time.** Receipts spread over the working days of one year, ``START`` to ``END`` (08:30–17:30 Asia/Shanghai),
over all Pan'an stations PA01–PA15 and most Fenghua handling units (区经信局 FH-JXJ, the demo unit, more
often). Closed and overdue cases are received until 30 days before the end (they are finished, or late, by
then); waiting cases in the last 28 days, fresh ones in the last 10. One event queue in time order runs
every case's script, and the timer executor runs once per simulated day (at midnight, Asia/Shanghai) — one
batched clock move per day, not one per case — and once at ``END``.

Nothing is quadratic on our side: one query per step to find the case's open tasks (indexed by instance),
scripts are generators held only while a case is being worked, and :func:`build` prints the time per 1,000
cases (intake ms/case and step ms/step) to stderr so growth in the engine shows up while it runs.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import func, select

from engine import calendar, db, migrate
from engine.calendar import WorkdayCalendar
from engine.clock import SHANGHAI, FixedClock, to_utc
from engine.errors import QifuError
from engine.models import HumanTask, Instance, Timer
from engine.process_engine import ProcessEngine
from engine.services import ServiceRegistry

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = ROOT / "processes"
PA, FH = "pan_an_station", "fenghua_one_place"
START = "2025-10-09T08:30:00"  # the first working day after National Day 2025
END = "2026-09-30T17:00:00"  # a year later: the final clock, and "now" for the pages
DEFAULT_SEED = 2026

FATES = {"closed": 50, "waiting": 20, "overdue": 15, "fresh": 15}
PA_STATIONS = [f"PA{n:02d}" for n in range(1, 16)]
# Fenghua handling units: the demo unit (区经信局) more often, so its clerk's inbox has work every month.
FH_UNITS = {"FH-JXJ": 6, "FH-ZRZY": 3, "FH-ZJJ": 3, "FH-SJJ": 2, "FH-STHJ": 2, "FH-KJJ": 2, "FH-SWJ": 2,
            "FH-RSJ": 2, "FH-JTJ": 1, "FH-SLJ": 1, "FH-FGJ": 1, "FH-SHWJ": 1, "FH-KFQ": 2, "FH-XK": 1, "FH-JP": 1,
            "FH-YL": 1, "FH-CH": 1}
FH_CHANNELS = ["window_8718", "hotline", "pc_platform", "wechat_account", "yongqima", "qiyema", "web_form",
               "resident_commissioner", "special_team", "forum", "association", "wechat_group"]
CATEGORIES = ["factor_land", "factor_plant", "factor_water", "factor_power", "factor_gas", "factor_road",
              "factor_sewage", "factor_talent", "factor_finance", "factor_market", "policy_industry",
              "policy_talent", "policy_cost", "special_tech", "special_brand", "special_accounting",
              "special_legal", "special_public", "other"]
PLACES_PA = ["磐安", "安文", "冷水", "仁川", "尚湖", "玉山", "大盘", "方前", "双峰", "窈川", "双溪", "九和", "盘峰", "新城"]
PLACES_FH = ["奉化", "锦屏", "岳林", "莼湖", "西坞", "尚田", "萧王庙", "江口", "方桥", "溪口", "大堰", "裘村", "松岙"]
WORDS = ["恒", "瑞", "丰", "华", "兴", "盛", "达", "源", "锦", "泰", "宏", "信", "诚", "金", "天", "新", "联", "通", "润", "安"]
TRADES = ["药业", "机械", "电子", "食品", "纺织", "模具", "汽配", "五金", "新材料", "农业开发", "茶业", "文旅", "建材", "电器",
          "塑业", "包装", "科技", "物流", "服饰", "光电"]
TOPICS = [("厂房扩建用地手续", "厂房扩建需办理用地手续，不清楚流程。"), ("用电增容", "新增生产线需要用电增容，希望加快办理。"),
          ("排污许可办理", "排污许可证到期换证，材料准备有疑问。"), ("人才补贴申请", "想了解引进高层次人才的补贴政策。"),
          ("道路破损影响运输", "厂区门口道路破损，货车进出困难。"), ("融资担保", "企业流动资金紧张，希望对接融资担保。"),
          ("供水压力不足", "厂区供水压力不足，影响生产。"), ("技改项目备案", "技术改造项目备案流程咨询。"),
          ("招工难", "一线工人招聘困难，希望对接人力资源市场。"), ("商标注册", "产品商标注册遇到驳回，需要指导。")]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"


def weighted(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def local_date(instant: datetime, days: float = 0) -> str:
    """The Asia/Shanghai date ``days`` after ``instant``, as a form's ``date`` field takes it."""
    return (instant + timedelta(days=days)).astimezone(SHANGHAI).date().isoformat()


# --- the plans: who, when, which fate ---------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class Plan:
    received: datetime
    index: int
    process: str = field(compare=False)
    fate: str = field(compare=False)


def working_days(cal: WorkdayCalendar, first: date, last: date) -> list[date]:
    days, day = [], first
    while day <= last:
        if cal.is_workday(day):
            days.append(day)
        day += timedelta(days=1)
    return days


def make_plans(cases: int, seed: int, cal: WorkdayCalendar) -> list[Plan]:
    """N plans sorted by receipt: fate and process from the seeded random, receipt in the fate's window."""
    start, end = to_utc(START), to_utc(END)
    end_day = end.astimezone(SHANGHAI).date()
    windows = {
        "closed": working_days(cal, start.astimezone(SHANGHAI).date(), end_day - timedelta(days=30)),
        "waiting": working_days(cal, end_day - timedelta(days=28), end_day),
        "fresh": working_days(cal, end_day - timedelta(days=10), end_day),
    }
    windows["overdue"] = windows["closed"]
    rng = random.Random(seed)
    plans = []
    longs = max(1, cases // 20_000)
    for i in range(cases):
        if i < longs:  # received on the first morning, worked all year
            plans.append(Plan(start + timedelta(minutes=i), i, FH, "long"))
            continue
        fate = weighted(rng, FATES)
        process = PA if rng.random() < 0.5 else FH
        day = rng.choice(windows[fate])
        at = datetime(day.year, day.month, day.day, 8, 30, tzinfo=SHANGHAI) + timedelta(minutes=rng.uniform(0, 540))
        plans.append(Plan(min(to_utc(at), end - timedelta(minutes=1)), i, process, fate))
    plans.sort()
    return plans


# --- driving one case ---------------------------------------------------------------------------------------
class ScriptError(Exception):
    """A case's script found the case elsewhere than it expected (reported, the case is left where it is)."""


@dataclass
class Case:
    plan: Plan
    instance_id: int
    business_key: str
    rng: random.Random


# Tasks that open beside the main path (督办 follow-up, weekly progress reports): a case cannot end while
# one is open, so a script finishes them before the last step.
SIDE_TASKS: dict[str, tuple[dict[str, Any], str]] = {
    "Task_OfficeSupervise": ({"measures": "电话督促承办板块，要求尽快答复企业"}, "pa_office"),
    "Task_ProgressJoint": ({"progress": "正在协调各共同承办单位，已完成现场踏勘。"}, "fh_unit"),
    "Task_ProgressPlan": ({"progress": "处置方案按计划推进中。"}, "fh_unit"),
}


class Driver:
    """What a script may do to its case: look at the open tasks, complete one with its form, read the clock."""

    def __init__(self, engine: ProcessEngine, clock: FixedClock, cal: WorkdayCalendar) -> None:
        self.engine, self.clock, self.cal = engine, clock, cal
        self.end = to_utc(END)
        self.steps = 0

    def open_tasks(self, case: Case) -> list[tuple[str, str]]:
        """(spec id, task guid) of the case's open user tasks."""
        with self.engine.session() as s:
            return [(spec, guid) for spec, guid in s.execute(
                select(HumanTask.spec_id, HumanTask.task_guid).where(HumanTask.instance_id == case.instance_id)
                .order_by(HumanTask.id))]

    def has(self, case: Case, spec_id: str) -> bool:
        return any(spec == spec_id for spec, _ in self.open_tasks(case))

    def do(self, case: Case, spec_id: str, data: dict[str, Any], actor: str) -> None:
        guid = next((g for spec, g in self.open_tasks(case) if spec == spec_id), None)
        if guid is None:
            raise ScriptError(f"{case.business_key}: {spec_id} is not open "
                              f"(open: {[spec for spec, _ in self.open_tasks(case)]})")
        self.engine.runtime.complete_task(guid, data, actor=actor)
        self.steps += 1

    def finish_side_tasks(self, case: Case) -> None:
        for spec, guid in self.open_tasks(case):
            if spec in SIDE_TASKS:
                data, actor = SIDE_TASKS[spec]
                self.engine.runtime.complete_task(guid, data, actor=actor)
                self.steps += 1

    def now(self) -> datetime:
        return self.clock.now()


Script = Iterator[float]  # a case's script yields the hours until its next move


# --- Pan'an -------------------------------------------------------------------------------------------------
def pa_classify(d: Driver, c: Case, kind: str, scope: str = "area") -> None:
    d.do(c, "Task_Classify", {"classification": kind, "scope": scope, "notes": "综合受理板块研判"}, "pa_accept")


def pa_assess(d: Driver, c: Case) -> None:
    panels = c.rng.choice(["招商服务板块", "规划建设服务板块、经济发展服务板块", "经济发展服务板块"])
    d.do(c, "Task_AgencyAssess", {"joint_panels": panels, "opinion": "联动站内板块"}, "pa_agent")


def pa_revisit(d: Driver, c: Case) -> Script:
    yield c.rng.uniform(24, 72)
    if d.has(c, "Task_Revisit"):  # drawn: 20 % of general cases, every difficult case and complaint
        d.finish_side_tasks(c)
        satisfaction = weighted(c.rng, {"满意": 85, "基本满意": 10, "不满意": 5})  # 不满意: ends carried
        d.do(c, "Task_Revisit", {"satisfaction": satisfaction, "revisit_notes": "电话回访"}, "pa_office")


def pa_closed(d: Driver, c: Case) -> Script:
    r = c.rng
    yield r.uniform(0.2, 2)
    kind = weighted(r, {"simple": 40, "complex": 35, "difficult": 15, "complaint": 10})
    pa_classify(d, c, kind, r.choice(["area", "point", "chain"]))
    if kind == "simple":
        yield r.uniform(0.2, 2)
        d.do(c, "Task_AnswerOnSpot", {"feedback": "已当场答复企业，办理材料清单已告知。"}, "pa_accept")
        yield from pa_revisit(d, c)
        return
    if kind == "complaint":  # complaints go straight to the 诉求服务板块 (seed: 投诉、信访 are its to handle)
        yield r.uniform(2, 30)
        d.do(c, "Task_Appeal", {"scope": "area", "outcome": "resolved", "answer": "投诉已核实处理"}, "pa_appeal")
        yield r.uniform(0.5, 4)
        d.finish_side_tasks(c)
        d.do(c, "Task_Feedback", {"feedback": "您反映的问题已办结。"}, "pa_accept")
        yield from pa_revisit(d, c)
        return
    yield r.uniform(0.5, 4)
    pa_assess(d, c)
    late = r.random() < 0.12  # past the 3 working days: 督办, 挂账, the office follows up
    yield r.uniform(120, 200) if late else r.uniform(2, 30)
    if late:
        d.finish_side_tasks(c)
    if kind == "difficult":
        d.do(c, "Task_AgencyHandle", {"outcome": "unresolved", "answer": "站内板块无法解决，转诉求服务板块"}, "pa_agent")
        yield r.uniform(2, 24)
        way = weighted(r, {"resolved": 60, "plan": 25, "report": 15})
        if way == "resolved":
            d.do(c, "Task_Appeal", {"scope": "area", "outcome": "resolved", "answer": "协调园区管委会解决"}, "pa_appeal")
        elif way == "plan":
            d.do(c, "Task_Appeal", {"scope": "area", "outcome": "plan", "answer": "制定分步解决方案"}, "pa_appeal")
            yield r.uniform(48, 300)
            d.do(c, "Task_PlanExecute", {"answer": "方案已落实"}, "pa_appeal")
        else:
            d.do(c, "Task_Appeal", {"scope": r.choice(["point", "chain"]), "outcome": "report",
                                    "answer": "产业链配套问题，申报县难事办理窗口"}, "pa_appeal")
            yield r.uniform(24, 96)
            d.do(c, "Task_CountyHandle", {"answer": "县中心协调解决"}, "pa_fallback")
    else:
        d.do(c, "Task_AgencyHandle", {"outcome": "resolved", "answer": "已联动办理"}, "pa_agent")
    yield r.uniform(0.5, 4)
    d.finish_side_tasks(c)
    d.do(c, "Task_Feedback", {"feedback": "您反映的问题已办结。"}, "pa_accept")
    yield from pa_revisit(d, c)


def pa_overdue(d: Driver, c: Case) -> Script:
    r = c.rng
    yield r.uniform(0.2, 2)
    kind = weighted(r, {"complex": 60, "difficult": 25, "complaint": 15})
    pa_classify(d, c, kind)
    stage = "appeal" if kind == "complaint" else weighted(r, {"assess": 40, "handle": 25, "appeal": 20, "county": 15})
    if stage != "assess" and kind != "complaint":  # a complaint is with the 诉求服务板块 from the start
        yield r.uniform(0.5, 4)
        pa_assess(d, c)
        if stage != "handle":
            yield r.uniform(2, 24)
            d.do(c, "Task_AgencyHandle", {"outcome": "unresolved", "answer": "需诉求服务板块处置"}, "pa_agent")
            if stage == "county":
                yield r.uniform(2, 24)
                d.do(c, "Task_Appeal", {"scope": "point", "outcome": "report", "answer": "申报难事办理窗口"},
                     "pa_appeal")
    yield 24 * r.uniform(10, 20)  # the limit has passed: the office took up the 督办 for half of them
    if r.random() < 0.5 and d.has(c, "Task_OfficeSupervise"):
        d.do(c, "Task_OfficeSupervise", SIDE_TASKS["Task_OfficeSupervise"][0], "pa_office")


def pa_waiting(d: Driver, c: Case) -> Script:
    """Being handled, with the limit still ahead at the final clock: 3, 5 or 30 working days, by receipt."""
    r = c.rng
    received = d.now()
    yield r.uniform(0.2, 1)
    pa_classify(d, c, "complex" if r.random() < 0.7 else "difficult")
    if d.cal.deadline(received, 3) > d.end:
        if r.random() < 0.5:
            yield r.uniform(0.5, 2)
            pa_assess(d, c)
        return
    yield r.uniform(0.5, 2)
    pa_assess(d, c)
    yield r.uniform(1, 4)
    d.do(c, "Task_AgencyHandle", {"outcome": "unresolved", "answer": "需诉求服务板块处置"}, "pa_agent")
    if d.cal.deadline(received, 5) > d.end:
        return
    yield r.uniform(1, 4)
    d.do(c, "Task_Appeal", {"scope": "area", "outcome": "plan", "answer": "制定分步解决方案"}, "pa_appeal")


# --- Fenghua ------------------------------------------------------------------------------------------------
def fh_unit(r: random.Random) -> str:
    return weighted(r, FH_UNITS)


def fh_contact(d: Driver, c: Case, route: str, **extra: Any) -> None:
    d.do(c, "Task_Contact", {"contact_record": "已电话联系企业，核实了问题情况。", "route": route,
                             "opinion": "按职责分解落实。", **extra}, "fh_staff")


def fh_handle(d: Driver, c: Case, route: str) -> Script:
    """One round from 联系企业 to the answer, along ``route``."""
    r = c.rng
    if route == "quick":
        fh_contact(d, c, "quick")
        yield r.uniform(0.5, 4)
        d.do(c, "Task_QuickReply", {"result": "solved" if r.random() < 0.9 else "outside_policy",
                                    "reply_mode": r.choice(["on_site", "online"]),
                                    "answer": "已按现行政策答复企业，材料清单已发送。"}, "fh_staff")
    elif route == "transfer":
        fh_contact(d, c, "transfer", handling_unit=fh_unit(r))
        way = weighted(r, {"on_time": 80, "late": 10, "agreed": 10})
        if way == "agreed":
            yield r.uniform(2, 20)
            d.do(c, "Task_UnitHandle", {"result": "agree_date", "answer": "需协调其他部门，短期内无法办结。"}, "fh_unit")
            days = r.randint(5, 15)
            yield r.uniform(0.5, 3)
            d.do(c, "Task_AgreeDate", {"agreed_date": local_date(d.now(), days), "agreed_reason": "需等待上级部门批复",
                                       "agreed_contact": "王经理"}, "fh_unit")
            yield 24 * (days - 1) + r.uniform(0, 8)
        else:  # late: past the 2 working days, 催办 and 挂账, answered anyway
            yield r.uniform(100, 160) if way == "late" else r.uniform(3, 40)
        d.do(c, "Task_UnitHandle", {"result": "solved" if r.random() < 0.92 else "outside_policy",
                                    "answer": "已办结，请企业按清单准备材料。"}, "fh_unit")
        yield r.uniform(0.5, 6)
        d.do(c, "Task_SignOff", {"signoff": "approve"}, "fh_staff")  # RC-3: the centre signs the answer off
    elif route == "joint":
        fh_contact(d, c, "joint", opinion="涉及多个部门，提请专班商办。")
        yield r.uniform(2, 24)
        units = r.sample(list(FH_UNITS), 2)
        d.do(c, "Task_Organise", {"joint_units": ",".join(units), "meeting_at": local_date(d.now(), r.randint(1, 3)),
                                  "invite_jiwei": r.random() < 0.3, "invite_zuofeng": r.random() < 0.2,
                                  "meeting_minutes": "牵头单位负责落实，配合单位协同办理。"}, "fh_team")
        yield r.uniform(48, 140)
        d.finish_side_tasks(c)
        d.do(c, "Task_JointHandle", {"result": "solved", "answer": "各单位协同办结。",
                                     "unit_results": f"{units[0]}：已办结；{units[1]}：已配合。"}, "fh_unit")
    else:  # escalate to the leading group
        fh_contact(d, c, "escalate", opinion="问题重大，需上报。")
        yield r.uniform(2, 24)
        d.do(c, "Task_Analyse", {"analysis": "涉及面广、投资大，需领导小组研究。", "decision": "escalate"}, "fh_team")
        yield r.uniform(24, 72)
        d.do(c, "Task_DecidePlan", {"plan": "牵头单位会同相关部门限期解决。", "lead_unit": fh_unit(r),
                                    "plan_deadline": local_date(d.now(), r.randint(20, 40))}, "fh_leader")
        yield 24 * r.uniform(5, 18)
        d.finish_side_tasks(c)
        d.do(c, "Task_ExecutePlan", {"result": "solved", "answer": "处置方案已落实。"}, "fh_unit")


def fh_rating(d: Driver, c: Case, satisfaction: str) -> Script:
    """Revisit, then the enterprise's rating; 5 % let the window pass and the centre records it."""
    r = c.rng
    yield r.uniform(4, 48)
    d.do(c, "Task_Revisit", {"revisit_mode": r.choice(["phone", "visit", "online"]),
                             "revisit_note": "企业确认已收到答复。"}, "fh_staff")
    if r.random() < 0.05:  # the 5 working days pass (the executor runs at midnight): the task is withdrawn
        yield (d.cal.deadline(d.now(), 5) - d.now()).total_seconds() / 3600 + 25
        d.do(c, "Task_ProxyRating", {"satisfaction": satisfaction, "rating_comment": "回访时口头评价",
                                     "rating_source": "staff"}, "fh_staff")
        return
    yield r.uniform(1, 72)
    d.do(c, "Task_EnterpriseRating", {"satisfaction": satisfaction, "rating_comment": "辛苦了"}, "企业")


def fh_closed(d: Driver, c: Case) -> Script:
    r = c.rng
    route = weighted(r, {"quick": 40, "transfer": 40, "joint": 10, "escalate": 10})
    for round_no in range(3):  # 不满意: 挂账, back to 联系企业 for a new round (the third is satisfied)
        yield r.uniform(0.3, 3)
        yield from fh_handle(d, c, route)
        satisfaction = weighted(r, {"满意": 80, "基本满意": 12, "不满意": 8}) if round_no < 2 else "满意"
        yield from fh_rating(d, c, satisfaction)
        if satisfaction != "不满意":
            return
        route = "transfer"


def fh_overdue(d: Driver, c: Case) -> Script:
    r = c.rng
    yield r.uniform(0.3, 3)
    fh_contact(d, c, "transfer", handling_unit=fh_unit(r))
    if r.random() < 0.25:  # agreed a date, then missed it too
        yield r.uniform(2, 20)
        d.do(c, "Task_UnitHandle", {"result": "agree_date", "answer": "需协调其他部门。"}, "fh_unit")
        yield r.uniform(0.5, 3)
        d.do(c, "Task_AgreeDate", {"agreed_date": local_date(d.now(), r.randint(5, 10)),
                                   "agreed_reason": "需等待批复", "agreed_contact": "王经理"}, "fh_unit")


def fh_waiting(d: Driver, c: Case) -> Script:
    """Transferred and being handled: a fresh transfer (2 working days), an agreed date or a leader's plan
    after the final clock."""
    r = c.rng
    received = d.now()
    yield r.uniform(0.3, 2)
    if d.cal.deadline(received, 2) > d.end and r.random() < 0.7:
        fh_contact(d, c, "transfer", handling_unit=fh_unit(r))
        return
    end_days = (d.end - d.now()).total_seconds() / 86400
    # RC-2: an agreed date is at most 10 working days past the 2-working-day limit
    latest_days = (d.cal.deadline(d.now(), 12) - d.now()).total_seconds() / 86400 - 1.5
    if r.random() < 0.6 and latest_days > end_days + 1:
        fh_contact(d, c, "transfer", handling_unit=fh_unit(r))
        yield r.uniform(2, 8)
        d.do(c, "Task_UnitHandle", {"result": "agree_date", "answer": "需协调其他部门，短期内无法办结。"}, "fh_unit")
        yield r.uniform(0.5, 3)
        d.do(c, "Task_AgreeDate", {"agreed_date": local_date(d.now(), r.uniform(end_days + 1, latest_days)),
                                   "agreed_reason": "需等待上级部门批复", "agreed_contact": "王经理"}, "fh_unit")
        return
    fh_contact(d, c, "escalate", opinion="问题重大，需上报。")
    yield r.uniform(1, 6)
    d.do(c, "Task_Analyse", {"analysis": "需领导小组研究。", "decision": "escalate"}, "fh_team")
    yield r.uniform(2, 12)
    d.do(c, "Task_DecidePlan", {"plan": "牵头单位限期解决。", "lead_unit": fh_unit(r),
                                "plan_deadline": local_date(d.now(), end_days + r.randint(7, 60))}, "fh_leader")


def fh_long(d: Driver, c: Case) -> Script:
    """Joint handling that drags on all year: the unit reports progress every week when the cycle fires."""
    r = c.rng
    yield 1
    fh_contact(d, c, "joint", opinion="涉及多个部门，提请专班商办。")
    yield 4
    d.do(c, "Task_Organise", {"joint_units": "FH-JXJ,FH-ZRZY,FH-ZJJ", "meeting_at": local_date(d.now(), 2),
                              "invite_jiwei": True, "invite_zuofeng": True,
                              "meeting_minutes": "经信局牵头，自然资源规划分局、住建局配合。"}, "fh_team")
    while True:
        yield 24 * 7 + r.uniform(0, 2)
        d.finish_side_tasks(c)


def nothing(d: Driver, c: Case) -> Script:
    """Fresh: received, not yet touched."""
    yield from ()


SCRIPTS: dict[tuple[str, str], Callable[[Driver, Case], Script]] = {
    (PA, "closed"): pa_closed, (PA, "overdue"): pa_overdue, (PA, "waiting"): pa_waiting, (PA, "fresh"): nothing,
    (FH, "closed"): fh_closed, (FH, "overdue"): fh_overdue, (FH, "waiting"): fh_waiting, (FH, "fresh"): nothing,
    (FH, "long"): fh_long,
}


CODE_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # what a 统一社会信用代码 may hold (GB 32100)


def credit_code(name: str, process: str) -> str:
    """The enterprise's 18-character credit code: fixed per name (the same company, the same code), in the
    county's administrative division (磐安 330727, 奉化 330213)."""
    digest = hashlib.sha256(name.encode()).digest()
    tail = "".join(CODE_CHARS[b % len(CODE_CHARS)] for b in digest[:10])
    return f"91{'330727' if process == PA else '330213'}{tail}"


def intake_fields(plan: Plan, rng: random.Random, enterprises: list[str]) -> dict[str, Any]:
    """What a clerk types at 受理登记 (the public form and the API take the same fields); nine in ten give the
    enterprise's credit code."""
    title, description = rng.choice(TOPICS)
    name = rng.choice(enterprises)
    fields = {"enterprise_name": name, "contact_name": rng.choice(SURNAMES) + "经理",
              "contact_phone": f"13{rng.randint(0, 9)}{rng.randint(0, 99_999_999):08d}", "title": title,
              "description": description, "category": rng.choice(CATEGORIES)}
    if rng.random() < 0.9:
        fields["credit_code"] = credit_code(name, plan.process)
    if plan.process == PA:
        fields.update(unit=rng.choice(PA_STATIONS), channel=rng.choice(["visit", "walk_in"]))
    else:
        fields.update(channel=rng.choice(FH_CHANNELS))
    return fields


def enterprise_names(count: int, places: list[str], rng: random.Random) -> list[str]:
    """``count`` distinct plausible company names (an enterprise brings several problems a year)."""
    names: set[str] = set()
    count = min(count, len(places) * len(WORDS) ** 2 * len(TRADES) // 2)  # a million cases: repeat names
    while len(names) < count:
        names.add(f"{rng.choice(places)}{rng.choice(WORDS)}{rng.choice(WORDS)}{rng.choice(TRADES)}有限公司")
    return sorted(names)


# --- the simulation ---------------------------------------------------------------------------------------
@dataclass
class BuildStats:
    cases: int = 0
    steps: int = 0
    timers_fired: int = 0
    script_errors: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cloned: int = 0  # cases copied from the real ones (Cloner), 0 when every case was built for real
    clone_seconds: float = 0.0


class Simulation:
    """Runs every case's script in time order; the timer executor runs once per simulated day."""

    def __init__(self, engine: ProcessEngine, clock: FixedClock, cal: WorkdayCalendar, seed: int,
                 log: TextIO = sys.stderr) -> None:
        self.engine, self.clock, self.seed, self.log = engine, clock, seed, log
        self.driver = Driver(engine, clock, cal)
        self.stats = BuildStats()
        self.queue: list[tuple[datetime, int, Case, Script]] = []
        self.seq = 0

    def fire_timers(self, at: datetime) -> None:
        self.clock.set(at)
        for _ in range(1000):  # a failing timer stays due (the engine counts its attempts): do not spin on it
            fired = self.engine.management.run_due_timers(limit=500, worker="bench")
            self.stats.timers_fired += fired
            if fired == 0:
                break

    def advance(self, case: Case, script: Script) -> None:
        """Run ``script`` to its next ``yield`` and queue the case for then (or drop it when it is done)."""
        try:
            hours = next(script)
        except StopIteration:
            return
        except (ScriptError, QifuError) as exc:  # a real engine refusal is a finding: count it, keep going
            self.stats.script_errors += 1
            if len(self.stats.errors) < 5:
                self.stats.errors.append(f"{case.business_key} ({case.plan.process}, {case.plan.fate}): "
                                         f"{type(exc).__name__}: {exc}")
            return
        self.seq += 1
        heapq.heappush(self.queue, (self.clock.now() + timedelta(hours=hours), self.seq, case, script))

    def start(self, plan: Plan, enterprises: dict[str, list[str]]) -> None:
        from handlers.intake import submit_case

        rng = random.Random(self.seed * 1_000_003 + plan.index)
        fields = intake_fields(plan, rng, enterprises[plan.process])
        actor = "pa_accept" if plan.process == PA else "fh_staff"
        submitted = submit_case(self.engine, plan.process, fields, actor=actor)
        case = Case(plan, submitted.instance_id, submitted.business_key, rng)
        self.advance(case, SCRIPTS[(plan.process, plan.fate)](self.driver, case))

    def run(self, plans: list[Plan]) -> BuildStats:
        rng = random.Random(self.seed)
        per_region = max(20, len(plans) // 10)  # about five cases per enterprise a year
        enterprises = {PA: enterprise_names(per_region, PLACES_PA, rng), FH: enterprise_names(per_region, PLACES_FH, rng)}
        end = to_utc(END)
        next_batch = _next_midnight(to_utc(START))
        t0 = block_t0 = time.perf_counter()
        block_intake = 0.0
        block_steps = self.driver.steps
        block_fired = 0
        i = 0
        while i < len(plans) or self.queue:
            intake_at = plans[i].received if i < len(plans) else None
            step_at = self.queue[0][0] if self.queue else None
            at = min(t for t in (intake_at, step_at) if t is not None)
            if at > end:
                break  # what would happen after the final clock stays undone: those cases are waiting
            while next_batch <= at:
                self.fire_timers(next_batch)
                next_batch += timedelta(days=1)
            self.clock.set(at)
            if intake_at is not None and intake_at == at:
                ti = time.perf_counter()
                self.start(plans[i], enterprises)
                block_intake += time.perf_counter() - ti
                i += 1
                self.stats.cases = i
                if i % 1000 == 0 or i == len(plans):
                    now = time.perf_counter()
                    steps = self.driver.steps - block_steps
                    fired = self.stats.timers_fired - block_fired
                    n = (i - 1) % 1000 + 1
                    other = now - block_t0 - block_intake
                    print(f"  [build] {i:>7,}/{len(plans):,} cases  last {n:,}: {now - block_t0:6.1f} s "
                          f"(intake {1000 * block_intake / n:5.1f} ms/case; {steps:,} steps + {fired:,} timers "
                          f"{1000 * other / max(steps + fired, 1):5.1f} ms each)  "
                          f"clock {at.astimezone(SHANGHAI):%Y-%m-%d}  total {now - t0:7.1f} s",
                          file=self.log, flush=True)
                    block_t0, block_intake = now, 0.0
                    block_steps, block_fired = self.driver.steps, self.stats.timers_fired
            else:
                _, _, case, script = heapq.heappop(self.queue)
                self.advance(case, script)
        while next_batch <= end:
            self.fire_timers(next_batch)
            next_batch += timedelta(days=1)
        self.fire_timers(end)
        self.stats.steps = self.driver.steps
        self.stats.seconds = time.perf_counter() - t0
        return self.stats


def _next_midnight(instant: datetime) -> datetime:
    local = instant.astimezone(SHANGHAI)
    return to_utc(datetime(local.year, local.month, local.day, tzinfo=SHANGHAI) + timedelta(days=1))


# --- above the template size: clones of a real year ---------------------------------------------------------
TEMPLATE_CASES = 5000  # above this many cases, build this many for real and clone them (see Cloner)
# What a case is made of, parents first: every row here belongs to one case (through instance_id, case_id or
# the task it names). Other tables that point at a case must be empty in the template (checked).
CLONED_TABLES = ("instance", "enterprise_case", "event", "human_task", "task_candidate", "historic_task", "timer",
                 "case_unit", "joint_review", "outbox", "rating", "revisit_draw", "supervision")
CASE_PARENTS = ("instance", "enterprise_case", "human_task")
# The revisit draw is sha256(seed) below a threshold and decided the case's path: its seed (which names the
# template's case number) is kept, so recomputing the draw still gives the decision the case took.
KEEP_TEXT = {("revisit_draw", "seed"), ("event", "prev_hash"), ("event", "hash")}
# A keyed seal of the old chain proves nothing about the copy's: the copied MAC is cleared and each rehashed row
# signed again with the bench engine's history key (:meth:`Cloner._rechain`), as a step would have signed it.
CLEARED = {("event", "mac")}
_PLACE = "|".join(sorted(set(PLACES_PA + PLACES_FH), key=len, reverse=True))
_TRADE = "|".join(sorted(TRADES, key=len, reverse=True))
# Task ids, tracking hashes and credit codes are whole column values or quoted JSON strings (a leading quote
# lets the scan skip ahead); case numbers and names also occur inside free text (notes, messages).
_UUID = re.compile(r'(?<=")[0-9a-f]{8}(?=-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")')
_HEX = re.compile(r'(?<=")[0-9a-f]{64}(?=")')
_CODE = re.compile(r'(?<=")91330(?:727|213)[0-9A-Z]{10}(?=")')
_WHOLE_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_WHOLE_HEX = re.compile(r"[0-9a-f]{64}")
_WHOLE_CODE = re.compile(r"91330(?:727|213)[0-9A-Z]{10}")
_KEY = re.compile(r"(?<![A-Za-z0-9])((?:PA|FH)-\d{8}-)(\d{4})(?!\d)")
_NAME = re.compile(rf"(?:{_PLACE})[{''.join(WORDS)}]{{2}}(?:{_TRADE})有限公司")


@dataclass
class CloneStats:
    clones: int = 0
    cases: int = 0
    rows: int = 0
    seconds: float = 0.0


class Cloner:
    """Copies the template's cases (built through the real paths) as other enterprises' cases, so a large
    database costs minutes instead of hours of engine steps.

    A clone of a case is the same story on the same days for another enterprise: every row of the case
    (instance with its saved workflow, ledger, history, open and historic tasks, candidates, timers, units,
    joint reviews, outbox, ratings, draws, supervisions) is copied with new ids (id + clone × the template's
    largest id), new task ids (every UUID in every column, the saved workflow's included, changed the same
    way), a new case number (the day's sequence moved past the template's: ``PA-20260310-0003`` becomes
    ``PA-20260310-0043``), another enterprise name from the same pool of plausible names with its credit
    code, and a new tracking-token hash. The history chain of each copy is hashed again with
    :func:`engine.history.event_hash` and the instance head updated, so ``qifu audit verify`` passes (checked
    on a sample after the copy). Times are not moved: a clone happens when its template happened.
    """

    def __init__(self, engine: ProcessEngine, template_cases: int, seed: int, log: TextIO) -> None:
        from sqlalchemy import inspect

        self.engine, self.log = engine, log
        self.sql = db.get_engine(engine.url)
        self.dialect = self.sql.dialect.name
        self.template_cases = template_cases
        with self.sql.connect() as conn:
            inspector = inspect(conn)
            self.columns = {t: [c["name"] for c in inspector.get_columns(t)] for t in CLONED_TABLES}
            self.parent_of: dict[str, dict[str, str]] = {}
            for t in CLONED_TABLES:
                self.parent_of[t] = {fk["constrained_columns"][0]: fk["referred_table"]
                                     for fk in inspector.get_foreign_keys(t) if fk["referred_table"] in CASE_PARENTS}
            for t in inspector.get_table_names():
                refs = {fk["referred_table"] for fk in inspector.get_foreign_keys(t)}
                if t not in CLONED_TABLES and refs & set(CASE_PARENTS):
                    n = conn.exec_driver_sql(f'SELECT count(*) FROM "{t}"').scalar()
                    if n:
                        raise RuntimeError(f"table {t} points at cases and has {n} rows: the cloner does not copy it")
            self.stride = {t: int(conn.exec_driver_sql(f'SELECT coalesce(max(id), 0) FROM "{t}"').scalar() or 0)
                           for t in CLONED_TABLES if "id" in self.columns[t] and t != "task_candidate"}
            self.last_seq = dict(conn.exec_driver_sql("SELECT prefix, last FROM business_key_counter").all())
            self.rows = {t: [dict(r._mapping) for r in conn.execute(select(self._raw(t)))] for t in CLONED_TABLES}
        self.names = self._name_pool(seed)

    def _raw(self, table: str) -> Any:
        """The table with untyped columns: values are copied exactly as stored (times in their stored text)."""
        from sqlalchemy import column
        from sqlalchemy import table as table_

        return table_(table, *[column(c) for c in self.columns[table]])

    def _name_pool(self, seed: int) -> dict[str, list[str]]:
        """Per region, every plausible name the template does not use, in a seeded order."""
        used = {r["enterprise_name"] for r in self.rows["enterprise_case"]}
        pools = {}
        for region, places in (("pan_an", PLACES_PA), ("fenghua", PLACES_FH)):
            names = [f"{p}{a}{b}{t}有限公司" for p in places for a in WORDS for b in WORDS for t in TRADES]
            names = [n for n in names if n not in used]
            random.Random(f"{seed}:{region}").shuffle(names)
            pools[region] = names
        return pools

    def run(self, cases: int) -> CloneStats:
        """Copy the template until there are ``cases`` cases (the last copy takes the first cases only)."""
        stats = CloneStats()
        t0 = time.perf_counter()
        instances = sorted(r["id"] for r in self.rows["instance"])
        template_names = sorted({(r["region"], r["enterprise_name"]) for r in self.rows["enterprise_case"]})
        clone = 0
        while len(instances) * (clone + 1) < cases:
            clone += 1
            take = set(instances[:min(len(instances), cases - len(instances) * clone)])
            written = self._copy(clone, take, template_names)
            stats.clones, stats.cases, stats.rows = clone, stats.cases + len(take), stats.rows + written
            print(f"  [clone] copy {clone}: {len(take):,} cases, {written:,} rows  total {time.perf_counter() - t0:6.1f} s",
                  file=self.log, flush=True)
        self._finish()
        stats.seconds = time.perf_counter() - t0
        return stats

    def _copy(self, clone: int, take: set[int], template_names: list[tuple[str, str]]) -> int:
        names: dict[str, str] = {}
        codes: dict[str, str] = {}
        per_region: Counter[str] = Counter()
        for region, name in template_names:
            pool = self.names[region]
            new = pool[((clone - 1) * len(template_names) + per_region[region]) % len(pool)]
            per_region[region] += 1
            names[name] = new
            process = PA if region == "pan_an" else FH
            codes[credit_code(name, process)] = credit_code(new, process)
        hexes: dict[str, str] = {}

        def renumber(m: re.Match[str]) -> str:
            number = int(m.group(2)) + clone * self.last_seq.get(m.group(1), 0)
            if number > 9999:
                raise RuntimeError(f"{m.group(1)}: more than 9999 cases a day after cloning")
            return f"{m.group(1)}{number:04d}"

        def hex_(m: re.Match[str]) -> str:
            old = m.group(0)
            if old not in hexes:
                hexes[old] = hashlib.sha256(f"{old}:{clone}".encode()).hexdigest()
            return hexes[old]

        def uuid(old: str) -> str:
            return f"{int(old[:8], 16) ^ clone:08x}{old[8:]}"

        def rewrite(value: str) -> str:
            """The clone's version of a stored text: each pass only where its token can be."""
            if len(value) == 36 and _WHOLE_UUID.fullmatch(value):
                return uuid(value)
            if len(value) == 64 and _WHOLE_HEX.fullmatch(value):
                return hex_(_WHOLE_HEX.fullmatch(value))  # type: ignore[arg-type]
            if len(value) == 18 and _WHOLE_CODE.fullmatch(value):
                return codes.get(value, value)
            if '"' in value:
                value = _UUID.sub(lambda m: f"{int(m.group(0), 16) ^ clone:08x}", value)
                if "tracking" in value:
                    value = _HEX.sub(hex_, value)
                if '"91330' in value:
                    value = _CODE.sub(lambda m: codes.get(m.group(0), m.group(0)), value)
            if "PA-2" in value or "FH-2" in value:
                value = _KEY.sub(renumber, value)
            if "有限公司" in value:
                value = _NAME.sub(lambda m: names.get(m.group(0), m.group(0)), value)
            return value

        cases = {r["id"] for r in self.rows["enterprise_case"] if r["instance_id"] in take}
        guids = {r["task_guid"] for r in self.rows["human_task"] if r["instance_id"] in take}
        belongs = {"instance": lambda r: r["id"] in take, "task_candidate": lambda r: r["task_guid"] in guids}
        written = 0
        out: dict[str, list[dict[str, Any]]] = {}
        for t in CLONED_TABLES:
            parents = self.parent_of[t]
            test = belongs.get(t)
            if test is None:
                column_, parent = next(((c, p) for c, p in parents.items() if p != "human_task"), (None, None))
                if column_ is None:
                    raise RuntimeError(f"{t}: no column leads to its case")
                wanted = take if parent == "instance" else cases
                test = (lambda col, ids: lambda r: r[col] in ids)(column_, wanted)
            rows = []
            for row in self.rows[t]:
                if not test(row):
                    continue
                new = {}
                for key, value in row.items():
                    if (t, key) in CLEARED:
                        value = None
                    elif key == "id" and t in self.stride:
                        value = value + clone * self.stride[t]
                    elif key in parents and parents[key] != "human_task" and value is not None:
                        value = value + clone * self.stride[parents[key]]
                    elif isinstance(value, str) and len(value) >= 10 and (t, key) not in KEEP_TEXT:
                        value = rewrite(value)
                    new[key] = value
                rows.append(new)
            out[t] = rows
        self._rechain(out["instance"], out["event"])
        with self.sql.begin() as conn:
            for t in CLONED_TABLES:
                if out[t]:
                    conn.execute(self._raw(t).insert(), out[t])
                    written += len(out[t])
        return written

    def _rechain(self, instances: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
        """Hash each copied case's history again (the hash covers the instance id and the new task ids) and sign
        each row with this engine's history key."""
        from engine import history

        keys = self.engine.history.keys
        by_instance: dict[int, list[dict[str, Any]]] = {}
        for ev in events:
            by_instance.setdefault(ev["instance_id"], []).append(ev)
        for inst in instances:
            prev = history.GENESIS
            for ev in sorted(by_instance.get(inst["id"], []), key=lambda e: (e["seq"], e["id"])):
                ev["prev_hash"] = prev
                ev["hash"] = prev = history.event_hash(
                    prev, instance_id=ev["instance_id"], seq=ev["seq"], at=self._instant(ev["at"]), actor=ev["actor"],
                    action=ev["action"], task_guid=ev["task_guid"], spec_id=ev["spec_id"], payload=ev["payload"])
                ev["mac"] = keys.sign(prev)
            inst["history_hash"] = prev if by_instance.get(inst["id"]) else inst["history_hash"]

    def _instant(self, value: Any) -> datetime:
        """A stored time as the engine reads it (aware UTC), for hashing."""
        from engine.models import UTCDateTime

        if isinstance(value, str):
            value = self.sql.dialect.type_descriptor(UTCDateTime.impl).result_processor(self.sql.dialect, None)(value)
        return UTCDateTime.process_result_value(value, self.sql.dialect)

    def _finish(self) -> None:
        """Counters after the copies: the day's last case number, and PostgreSQL's id sequences."""
        with self.sql.begin() as conn:
            for prefix, last in self.last_seq.items():
                top = conn.execute(select(func.max(Instance.business_key)).where(
                    Instance.business_key.like(f"{prefix}%"))).scalar()
                if top:
                    conn.exec_driver_sql("UPDATE business_key_counter SET last = ? WHERE prefix = ?"
                                         if self.dialect == "sqlite" else
                                         "UPDATE business_key_counter SET last = %s WHERE prefix = %s",
                                         (max(last, int(top[-4:])), prefix))
            if self.dialect == "postgresql":
                for t in self.stride:
                    conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "
                                         f"(SELECT coalesce(max(id), 1) FROM \"{t}\"))")

    def check(self, sample: int = 200) -> None:
        """The copied chains verify (a sample of the last copy's cases), as ``qifu audit verify`` checks them."""
        with self.sql.connect() as conn:
            ids = [r[0] for r in conn.execute(select(Instance.id).order_by(Instance.id.desc()).limit(sample))]
        problems = self.engine.history.verify(ids)
        if problems:
            raise RuntimeError(f"cloned history does not verify: {problems[:3]}")


# --- the whole database -------------------------------------------------------------------------------------
def registry() -> ServiceRegistry:
    import handlers

    reg = ServiceRegistry()
    handlers.register(reg)
    return reg


def build(url: str, cases: int, seed: int = DEFAULT_SEED, log: TextIO = sys.stderr,
          template: int = TEMPLATE_CASES) -> BuildStats:
    """Migrate ``url`` (an empty database), load what ``qifu init --demo`` loads but the demo cases, then
    simulate a year of ``cases`` cases — or, above ``template`` cases, a year of ``template`` cases cloned
    up to ``cases`` (:class:`Cloner`; 0: never clone). Returns the counts; prints progress to ``log``."""
    from handlers import reference
    from web.demo.users import create_demo_users

    if os.environ.pop("QIFU_VERIFY_STEPS", None) not in (None, "", "0"):
        print("  [build] QIFU_VERIFY_STEPS unset for the build (it checks every step: slow)", file=log)
    migrate.upgrade(url)
    clock = FixedClock(START)
    engine = ProcessEngine(url, clock, registry())
    with engine.session() as s:
        calendar.seed_from_chinesecalendar(s, clock.now())
        reference.load_reference(s)
        create_demo_users(s, now=clock.now())
    for key in (PA, FH):
        path = PROCESSES / f"{key}.bpmn"
        engine.deploy(path.read_bytes(), filename=path.name, actor="bench")
    with engine.session() as s:
        cal = calendar.load_calendar(s)
    real = cases if not template or cases <= template else template
    plans = make_plans(real, seed, cal)
    print(f"  [build] {real:,} cases into {_safe(url)}: " + ", ".join(
        f"{fate} {n:,}" for fate, n in sorted(Counter(p.fate for p in plans).items())), file=log, flush=True)
    stats = Simulation(engine, clock, cal, seed, log).run(plans)
    print(f"  [build] done in {stats.seconds:.1f} s: {stats.cases:,} cases, {stats.steps:,} task completions, "
          f"{stats.timers_fired:,} timers fired, {stats.script_errors} scripts stopped early", file=log, flush=True)
    for line in stats.errors:
        print(f"  [build]   {line}", file=log)
    if real < cases:
        cloner = Cloner(engine, real, seed, log)
        copied = cloner.run(cases)
        cloner.check()
        stats.cloned, stats.clone_seconds = copied.cases, copied.seconds
        print(f"  [clone] done in {copied.seconds:.1f} s: {copied.clones} copies, {copied.cases:,} cases, "
              f"{copied.rows:,} rows; history chains of a sample verified", file=log, flush=True)
    print(f"  [build] {summary(engine)}", file=log, flush=True)
    db.dispose_all()
    return stats


def summary(engine: ProcessEngine) -> str:
    """One line: instances by status, ledger states, overdue cases, open tasks, waiting timers after END."""
    from handlers.models import EnterpriseCase

    with engine.session() as s:
        status = dict(s.execute(select(Instance.status, func.count()).group_by(Instance.status)).all())
        ledger = dict(s.execute(select(EnterpriseCase.ledger_status, func.count())
                                .group_by(EnterpriseCase.ledger_status)).all())
        overdue = s.scalar(select(func.count()).where(EnterpriseCase.overdue.is_(True)))
        tasks = s.scalar(select(func.count()).select_from(HumanTask))
        waiting = s.scalar(select(func.count()).where(Timer.status == "waiting"))
    return (f"instances {status}; ledger {ledger}; overdue {overdue:,}; open tasks {tasks:,}; "
            f"waiting timers {waiting:,}")


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
