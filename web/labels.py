"""Chinese labels for what the UI shows: history actions, case variables, task states, masking — and the one
lookup every reader of the history uses (:class:`CaseLabels`: the case page's 办理记录, the replay page,
``qifu audit replay``, the event-log exports).

One table per kind of word, so templates never spell a label twice and a missing label falls back to the
technical name instead of breaking the page. Words about a case's history come from where they are defined:
element names, lanes, form labels and choice labels from the case's own diagram version; units, channels
and categories from the reference data; people from the users table (display name and unit).
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.clock import SHANGHAI, to_utc
from engine.forms import form_fields
from handlers.models import Category, Channel, OrgUnit

if TYPE_CHECKING:
    from engine.history import ElementRef, StepEvent
    from engine.process_engine import ProcessEngine

ACTIONS = {
    "started": "案件受理",
    "task_completed": "办理任务",
    "timer_fired": "期限到达",
    "timer_rescheduled": "调整期限",
    "deadline_recomputed": "重算期限",
    "task_claimed": "认领任务",
    "task_unclaimed": "退回组内",
    "task_reassigned": "改派任务",
    "attachment_added": "上传附件",
    "reminder_sent": "一键催办",
    "incident_retried": "重试异常",
}

# docs/domain.md "Case data"; diagram form fields carry their own labels (looked up from the diagram first)
VARIABLES = {
    "region": "区域", "unit": "受理单位", "channel": "受理渠道", "category": "问题分类",
    "enterprise_name": "企业名称", "credit_code": "统一社会信用代码", "contact_name": "联系人",
    "contact_phone": "联系电话", "contact_id_number": "身份证号", "title": "诉求标题", "description": "诉求内容",
    "received_at": "受理时间", "tracking_hash": "查询凭证摘要", "classification": "问题定性", "scope": "问题层级",
    "route": "办理路径", "handling_unit": "承办单位", "joint_units": "会商单位", "agreed_date": "约定办结日期",
    "satisfaction": "满意度", "ledger_status": "台账状态", "overdue": "逾期", "transferred_at": "交办时间",
    "meeting_at": "会商时间", "escalated_to": "上报至", "escalated_at": "上报时间",
    "revisit_selected": "抽中回访", "revisit_reason": "回访抽样说明",
}

# Values the diagrams set outside any form (an output parameter), which no form option names.
VALUES = {("rating_source", "enterprise"): "企业本人评价", ("rating_source", "revisit"): "回访时评价",
          ("rating_source", "staff"): "中心工作人员代录"}

REGIONS = {"pan_an": "磐安", "fenghua": "奉化"}
LEDGER = {"handling": "办理中", "answered": "已答复", "closed": "销账", "carried": "挂账"}

_UNIT_VARIABLES = frozenset({"unit", "handling_unit", "joint_units", "units", "escalated_to"})


@dataclass
class CodeNames:
    """Names for the codes case data holds (units, channels, categories), so pages read as Chinese."""

    units: dict[str, str]
    channels: dict[str, str]
    categories: dict[str, str]
    short_units: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session) -> CodeNames:
        units = {code: (name, short) for code, name, short in
                 session.execute(select(OrgUnit.code, OrgUnit.name, OrgUnit.short_name))}
        return cls({c: n for c, (n, _) in units.items()},
                   dict(session.execute(select(Channel.code, Channel.name)).all()),
                   dict(session.execute(select(Category.code, Category.name)).all()),
                   {c: s or n for c, (n, s) in units.items()})

    def show(self, key: str, value: Any) -> str:
        """A case-data value in words: unit, channel and category names, booleans, Beijing times."""
        if isinstance(value, bool):
            return "是" if value else "否"
        if value is None:
            return ""
        if key in _UNIT_VARIABLES:
            items = value if isinstance(value, list) else [value]
            return "、".join(self.units.get(str(v), str(v)) for v in items)
        if key == "channel":
            return self.channels.get(str(value), str(value))
        if key == "category":
            return self.categories.get(str(value), str(value))
        if key == "region":
            return REGIONS.get(str(value), str(value))
        if key == "ledger_status":
            return LEDGER.get(str(value), str(value))
        if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == "T":
            try:
                return to_utc(value).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
            except ValueError:
                return value
        if isinstance(value, (list, dict)):
            return json.dumps(value, ensure_ascii=False)
        return str(value)
LIGHTS = {"green": "正常", "yellow": "临期", "red": "逾期", "none": "无期限"}
TASK_STATUS = {"": "全部", "mine": "我已认领", "unclaimed": "待认领", "claimed": "已认领", "overdue": "已逾期",
               "due_soon": "临期"}

# Never shown in a timeline or a data change, not even masked (nor in the raw view): it would help guess the
# tracking token.
HIDDEN_VARIABLES = frozenset({"tracking_hash"})
# Bookkeeping the diagrams keep for themselves (when the current round started): left out of the readable
# timeline and the replay's data tables, shown in the raw view; so is any variable whose name starts with _.
BOOKKEEPING_VARIABLES = frozenset({"cycle_started_at"})
# Shown masked unless the viewer may unmask (web.scope.may_unmask), and every unmasked view is logged.
MASKED_VARIABLES = frozenset({"contact_phone", "contact_id_number"})


def action(name: str | None) -> str:
    return ACTIONS.get(name or "", name or "")


def variable(name: str) -> str:
    return VARIABLES.get(name, name)


def mask(field: str, value: object) -> str:
    """138****5678 for a phone, 330727********1234 for an ID number: enough to recognise, not to use."""
    text = "" if value is None else str(value)
    if not text:
        return ""
    if field == "contact_id_number":
        keep_head, keep_tail = (6, 4) if len(text) > 10 else (1, 1)
    else:
        keep_head, keep_tail = (3, 4) if len(text) >= 8 else (1, 1)
    if len(text) <= keep_head + keep_tail:
        return "*" * len(text)
    return text[:keep_head] + "*" * (len(text) - keep_head - keep_tail) + text[-keep_tail:]


# --- who did it, and how it reached the system ------------------------------------------------------------
TIMER_ACTOR = "系统（期限到达）"
SYSTEM_ACTORS = {"企业": "企业", "企业（网上提交）": "企业（网上提交）", "cli": "命令行", "demo": "演示数据",
                 "test": "测试", "system": "系统"}
CHANNELS_OF_EVENTS = {"web": "办理系统（网页）", "enterprise": "企业查询链接", "public": "公开表单",
                      "api": "接口", "timer": "定时器", "cli": "命令行", "system": "系统"}

# Problems verification finds (engine.history.Problem.kind), for the verification page.
PROBLEM_KINDS = {
    "edited": "内容被改动（与本行哈希不符）", "rehashed": "内容被改动且重算了哈希（下一行仍指向原哈希）",
    "inserted": "插入了伪造的行", "deleted": "行被删除", "broken": "链条断开", "head": "链头与记录不符",
    "orphan": "不属于任何案件的行", "unsigned": "缺少密钥签名（在无密钥的情况下写入或重写）",
    "unknown_key": "签名所用密钥不在密钥文件中", "bad_mac": "签名与哈希不符（无密钥者重写了链条）",
}

_GATEWAY = "Gateway"
_HINT = re.compile(r"\s*[（(][^（）()]*[）)]\s*$")  # a form label's trailing hint: 承办单位编码（单部门流转时必填）
_EVENT_KINDS = ("StartEvent", "EndEvent", "BoundaryEvent", "IntermediateCatchEvent", "IntermediateThrowEvent")


@dataclass(frozen=True)
class Element:
    """A diagram element as readers show it."""

    id: str
    name: str | None
    type: str
    lane: str | None

    @property
    def is_task(self) -> bool:
        return self.type.endswith("Task") and self.type not in ("BpmnStartTask", "SimpleBpmnTask")


@dataclass
class DiagramWords:
    """What one diagram version names: its elements (name, kind, lane), its form fields' labels and the labels of
    their choices (per task, and across the diagram for data set outside a form)."""

    elements: dict[str, Element] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    choices: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # (task, field) → value → label
    any_choice: dict[str, dict[str, str]] = field(default_factory=dict)  # field → value → label

    @classmethod
    def of_specs(cls, specs: Iterable[Any]) -> DiagramWords:
        words = cls()
        for spec in specs:
            bpmn_id = getattr(spec, "bpmn_id", None)
            if not bpmn_id:
                continue
            words.elements.setdefault(bpmn_id, Element(bpmn_id, getattr(spec, "bpmn_name", None),
                                                       type(spec).__name__, getattr(spec, "lane", None)))
            if getattr(spec, "form", None) is None:
                continue
            for fd in form_fields(spec):
                if fd.label:
                    words.fields.setdefault(fd.id, _HINT.sub("", fd.label).strip() or fd.label)
                if fd.options:
                    options = {str(k): v for k, v in fd.options if v}
                    words.choices[(bpmn_id, fd.id)] = options
                    for k, v in options.items():
                        words.any_choice.setdefault(fd.id, {}).setdefault(k, v)
        return words


_DIAGRAMS: OrderedDict[int, tuple[Any, DiagramWords]] = OrderedDict()  # id(spec) → (spec, its words)
_DIAGRAMS_KEPT = 64


def diagram_words(engine: ProcessEngine, deployment_id: int) -> DiagramWords:
    """The words of one deployed version, kept per parsed spec (the engine caches one spec object per
    version's content, so a database recreated under the same ids never gets another diagram's words)."""
    spec, subs = engine.repository.specs(deployment_id)
    found = _DIAGRAMS.get(id(spec))
    if found is not None and found[0] is spec:
        return found[1]
    specs = list(spec.task_specs.values())
    for sub in subs.values():
        specs.extend(sub.task_specs.values())
    words = DiagramWords.of_specs(specs)
    _DIAGRAMS[id(spec)] = (spec, words)
    while len(_DIAGRAMS) > _DIAGRAMS_KEPT:
        _DIAGRAMS.popitem(last=False)
    return words


def notice_choice_label(engine: ProcessEngine, process_key: str, name: str, value: str) -> str | None:
    """A form choice's label for a notice (handlers.notify): from the newest version of the process, since a
    notice may be written in the step that starts the case, before its version can be read back."""
    ref = engine.repository.latest(process_key) if process_key else None
    if ref is None:
        return None
    return diagram_words(engine, ref.id).any_choice.get(name, {}).get(value)


@dataclass(frozen=True)
class Person:
    display_name: str
    unit: str | None


def load_people(session: Session) -> dict[str, Person]:
    """Every web account by login name (the table holds staff, not cases: small whatever the database's size)."""
    from .models import User

    return {u: Person(d or u, c) for u, d, c in session.execute(select(User.username, User.display_name,
                                                                        User.unit_code))}


class CaseLabels:
    """Words for one case's history, the one lookup every history reader uses.

    ``codes`` is :class:`CodeNames` (units, channels, categories); ``people`` the accounts.
    """

    def __init__(self, diagram: DiagramWords, codes: Any, people: Mapping[str, Person]) -> None:
        self.diagram = diagram
        self.codes = codes
        self.people = people

    @classmethod
    def load(cls, engine: ProcessEngine, session: Session, deployment_id: int) -> CaseLabels:
        return cls(diagram_words(engine, deployment_id), CodeNames.load(session), load_people(session))

    # --- elements ---------------------------------------------------------------------------------------
    def element(self, element_id: str | None) -> str:
        """An element by its name in the diagram (its id only when it has none)."""
        if not element_id:
            return ""
        found = self.diagram.elements.get(element_id)
        return (found.name if found and found.name else None) or element_id

    def lane(self, element_id: str | None) -> str | None:
        found = self.diagram.elements.get(element_id or "")
        return found.lane if found else None

    def is_task(self, element_id: str | None) -> bool:
        found = self.diagram.elements.get(element_id or "")
        return bool(found and found.is_task)

    @staticmethod
    def shows(ref: ElementRef) -> bool:
        """Whether the readable timeline names this element: tasks and named events, never a gateway (the
        choice it made shows as the data that drove it) nor an element without a name."""
        return bool(ref.element and ref.name) and _GATEWAY not in ref.type

    # --- data -------------------------------------------------------------------------------------------
    def field(self, key: str) -> str | None:
        """A variable's label (the diagram's form label first, then VARIABLES, else its name: a diagram of
        someone else's still reads); None for bookkeeping, which readers hide."""
        if key in HIDDEN_VARIABLES or key in BOOKKEEPING_VARIABLES or key.startswith("_"):
            return None
        return self.diagram.fields.get(key) or VARIABLES.get(key) or key

    def value(self, key: str, value: Any, element: str | None = None) -> str:
        """A value in words: a choice by its label (that task's form first), codes by their names, booleans,
        Beijing times; contact numbers masked."""
        if key in MASKED_VARIABLES:
            return mask(key, value)
        if isinstance(value, str):
            options = self.diagram.choices.get((element or "", key)) or self.diagram.any_choice.get(key)
            if options and value in options:
                return options[value]
            if (key, value) in VALUES:
                return VALUES[(key, value)]
        if isinstance(value, (list, tuple)) and key in self.diagram.any_choice:
            return "、".join(self.value(key, v, element) for v in value)
        if isinstance(value, (datetime, date)):
            value = value.isoformat()
        return str(self.codes.show(key, value))

    def data_rows(self, data: Mapping[str, Any], element: str | None = None) -> list[tuple[str, str, str]]:
        """(variable, label, value in words) of the case data a reader shows, in the data's order."""
        out = []
        for key, value in data.items():
            label = self.field(key)
            if label is not None:
                out.append((key, label, self.value(key, value, element)))
        return out

    # --- people and channels ----------------------------------------------------------------------------
    def actor(self, actor: str | None, action: str | None = None) -> str:
        """Who acted, as people say it: a user by display name and unit, the timer as 系统（期限到达）."""
        if action == "timer_fired":
            return TIMER_ACTOR
        if not actor:
            return "系统"
        person = self.people.get(actor)
        if person is not None:
            unit = self.codes.short_units.get(person.unit or "", person.unit) if person.unit else None
            return f"{person.display_name}（{unit}）" if unit and unit not in person.display_name \
                else person.display_name
        if actor.startswith("接口:"):
            return f"接口：{actor.split(':', 1)[1]}"
        return SYSTEM_ACTORS.get(actor, actor)

    def channel(self, event: StepEvent) -> str:
        """How the event reached the system: the intake channel for a case's start, else where it was done."""
        actor = event.actor or ""
        if event.action == "timer_fired":
            how = CHANNELS_OF_EVENTS["timer"]
        elif actor.startswith("接口:"):
            how = CHANNELS_OF_EVENTS["api"]
        elif actor == "企业（网上提交）":
            how = CHANNELS_OF_EVENTS["public"]
        elif actor == "企业":
            how = CHANNELS_OF_EVENTS["enterprise"]
        elif actor in self.people:
            how = CHANNELS_OF_EVENTS["web"]
        elif actor == "cli":
            how = CHANNELS_OF_EVENTS["cli"]
        else:
            how = CHANNELS_OF_EVENTS["system"]
        if event.action == "started" and event.data_set.get("channel"):
            return f"{self.codes.show('channel', event.data_set['channel'])} / {how}"
        return how

    def what(self, event: StepEvent) -> str:
        """The action with the element it was about: 办理任务：联系企业、了解诉求."""
        what = action(event.action)
        if event.spec_id:
            return f"{what}：{self.element(event.spec_id)}"
        return what


def raw_json(value: Any) -> str:
    """A value as the raw view shows it (JSON, Chinese kept readable)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def shanghai(at: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """An instant in Beijing wall time (seconds: the replay and the exports name the instant of each step)."""
    if at is None:
        return ""
    return to_utc(at).astimezone(SHANGHAI).strftime(fmt)
