"""A case's history for people: the readable timeline (case page 办理记录), the replay of one step (replay
page and ``qifu audit replay``: the same :class:`ReplayStep`), and the event log for process mining
(XES, IEEE 1849, and CSV), all worded by :class:`web.labels.CaseLabels`.

Readable means: elements by their names in the diagram, choices by their form labels, codes by names,
people by display name and unit, the timer as 系统（期限到达）. Gateways, unnamed elements and bookkeeping
variables are left out of the readable lines; each line keeps its raw event (ids, codes, login names) for
the raw view. Contact numbers are masked everywhere here, the raw view included; the tracking-token hash is
never shown.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import groupby
from typing import Any

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.clock import SHANGHAI
from engine.errors import NotFoundError, QifuError
from engine.history import LogFilter, LogRow, StepEvent
from engine.process_engine import ProcessEngine
from engine.runtime import InstanceView
from handlers.models import EnterpriseCase

from .. import labels
from ..labels import CaseLabels
from ..scope import Viewer, visible_cases
from ..spreadsheet import safe_text


# --- the raw view --------------------------------------------------------------------------------------
def raw_data(data: Any) -> Any:
    """Stored data as the raw view shows it: every key, contact numbers masked and the tracking hash left out,
    at any depth (an event's details may carry the data it started with)."""
    if isinstance(data, dict):
        return {k: (labels.mask(k, v) if k in labels.MASKED_VARIABLES else raw_data(v)) for k, v in data.items()
                if k not in labels.HIDDEN_VARIABLES}
    if isinstance(data, list):
        return [raw_data(v) for v in data]
    return data


def raw_event(ev: StepEvent) -> dict[str, Any]:
    """The event as stored (ids, codes, login names), for the raw view."""
    out: dict[str, Any] = {"seq": ev.seq, "action": ev.action, "actor": ev.actor, "task": ev.task_guid,
                           "element": ev.spec_id, "data_set": raw_data(ev.data_set),
                           "completed": [f"{c.element} ({c.type})" for c in ev.completed]}
    if ev.data_unset:
        out["data_unset"] = ev.data_unset
    if ev.active is not None:
        out["active"] = [f"{a.element} ({a.state})" for a in ev.active]
    if ev.details:
        out["details"] = raw_data(ev.details)
    if ev.notes:
        out["notes"] = raw_data(ev.notes)
    return out


# --- the timeline --------------------------------------------------------------------------------------
@dataclass
class Change:
    key: str
    label: str
    value: str


@dataclass
class TimelineEntry:
    seq: int
    at: datetime
    who: str
    action: str
    what: str
    channel: str
    elements: list[str]
    changes: list[Change]
    notes: list[str]
    reason: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


_UNIT_CODE = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+|PA\d{2}")


def note_text(note: dict[str, Any], words: CaseLabels) -> str:
    """A handler's note, with the unit codes in it (FH-ZJJ, PA01) replaced by the units' names."""
    text = str(note.get("note") or note.get("message") or "")
    return _UNIT_CODE.sub(lambda m: words.codes.short_units.get(m.group(0), m.group(0)), text)


def _changes(ev: StepEvent, words: CaseLabels) -> list[Change]:
    out = [Change(key, label, value) for key, label, value in words.data_rows(ev.data_set, ev.spec_id)
           if value != ""]  # a field set empty (a form left blank, a start's placeholders) says nothing here
    details = ev.details
    if ev.action in ("timer_rescheduled", "deadline_recomputed") and details.get("to"):
        out.append(Change("from", "原期限", words.codes.show("from", details.get("from"))))
        out.append(Change("to", "新期限", words.codes.show("to", details["to"])
                          + ("（暂定）" if details.get("provisional") else "")))
    if ev.action == "attachment_added" and details.get("filename"):
        out.append(Change("filename", "文件", str(details["filename"])))
    if ev.action == "reminder_sent" and details.get("unit_names"):
        out.append(Change("units", "催办单位", "、".join(str(n) for n in details["unit_names"])))
        out.append(Change("sender", "督办人", str(details.get("sender") or "")))
    if ev.action in ("task_claimed", "task_reassigned") and details.get("assignee"):
        out.append(Change("assignee", "办理人", words.actor(str(details["assignee"]))))
    return out


def _shown_elements(ev: StepEvent, words: CaseLabels) -> list[str]:
    """Names of the elements the step completed that a reader cares about (not the one acted on)."""
    names = [c.name or "" for c in ev.completed if words.shows(c) and c.element != ev.spec_id]
    return list(dict.fromkeys(n for n in names if n))


def timeline(words: CaseLabels, events: list[StepEvent]) -> list[TimelineEntry]:
    """The case history in Chinese: who, what, when, through which channel, which data changed."""
    return [TimelineEntry(ev.seq or 0, ev.at, words.actor(ev.actor, ev.action), ev.action, words.what(ev),
                          words.channel(ev), _shown_elements(ev, words), _changes(ev, words),
                          [t for t in (note_text(n, words) for n in ev.notes) if t], ev.details.get("reason"),
                          raw_event(ev))
            for ev in events]


# --- replay ---------------------------------------------------------------------------------------------
@dataclass
class DataRow:
    key: str
    label: str
    before: str
    after: str
    changed: bool


@dataclass
class ReplayStep:
    """The case at one step, as the replay page shows it and ``qifu audit replay`` prints it."""

    business_key: str
    instance_id: int
    process_key: str
    process: str  # the diagram's name
    version: int
    step: int
    steps: int
    at: str  # Beijing wall time, to the second
    who: str
    what: str
    channel: str
    elements: list[str]  # completed in this step (readable)
    active: list[str]  # where the case stood afterwards (readable)
    markers: dict[str, list[str]]  # element ids: completed / active / overdue, as they were
    data: list[DataRow]  # the case data before and after the step, changed rows marked
    notes: list[str]
    reason: str | None
    raw: dict[str, Any]

    @property
    def changed(self) -> list[str]:
        return [r.key for r in self.data if r.changed]

    def to_dict(self) -> dict[str, Any]:
        return {"business_key": self.business_key, "instance": self.instance_id,
                "process_key": self.process_key, "process": self.process,
                "version": self.version, "step": self.step, "steps": self.steps,
                "event": {"at": self.at, "who": self.who, "what": self.what, "channel": self.channel},
                "elements": self.elements, "active_names": self.active, "markers": self.markers,
                "data_rows": [r.__dict__ for r in self.data], "changed": self.changed, "notes": self.notes,
                "reason": self.reason, "raw": self.raw}


def _apply(data: dict[str, Any], ev: StepEvent) -> None:
    data.update(ev.data_set)
    for key in ev.data_unset:
        data.pop(key, None)


def replay_step(instance: InstanceView, words: CaseLabels, events: list[StepEvent], step: int,
                due: dict[str, datetime | None]) -> ReplayStep:
    """Step ``step`` (1-based) of the case: the event, the diagram markers as they were then (completed
    elements, where it stood, overdue: deadline timers fired so far and open tasks past their due instant at
    the step's time — the case page's rule at that instant), and the data before and after."""
    if not events:
        raise NotFoundError(f"案件 {instance.business_key} 没有办理记录")
    if step < 1 or step > len(events):
        raise NotFoundError(f"案件 {instance.business_key} 没有第 {step} 步（共 {len(events)} 步）")
    before: dict[str, Any] = {}
    completed: list[str] = []
    active: list[Any] = []
    fired: list[str] = []
    for ev in events[:step - 1]:
        _apply(before, ev)
    for ev in events[:step]:
        completed.extend(c.element for c in ev.completed if c.element and c.element not in completed)
        if ev.active is not None:
            active = list(ev.active)
        if ev.action == "timer_fired" and ev.spec_id and ev.spec_id not in fired:
            fired.append(ev.spec_id)
    ev = events[step - 1]
    after = dict(before)
    _apply(after, ev)
    active_ids = sorted({a.element for a in active if a.element})
    overdue = set(fired)
    for a in active:
        deadline = due.get(a.task or "")
        if a.state == "ready" and deadline is not None and deadline < ev.at:
            overdue.add(a.element)
    markers = {"completed": [c for c in completed if c not in active_ids], "active": active_ids,
               "overdue": sorted(overdue)}
    touched = set(ev.data_set) | set(ev.data_unset)
    rows: list[DataRow] = []
    for key in dict.fromkeys([*before, *after]):
        label = words.field(key)
        if label is None:
            continue
        old = words.value(key, before[key], ev.spec_id) if key in before else ""
        new = words.value(key, after[key], ev.spec_id) if key in after else ""
        rows.append(DataRow(key, label, old, new, key in touched and (key not in before or key not in after
                                                                       or before[key] != after[key])))
    return ReplayStep(
        instance.business_key, instance.id, instance.process_key, instance.process_name or instance.process_key,
        instance.version,
        step, len(events), labels.shanghai(ev.at), words.actor(ev.actor, ev.action), words.what(ev),
        words.channel(ev), _shown_elements(ev, words),
        [f"{words.element(a.element)}（{'待办' if a.state == 'ready' else '等待'}）" for a in active
         if words.shows(a) or a.state == "ready"],
        markers, rows, [t for t in (note_text(n, words) for n in ev.notes) if t], ev.details.get("reason"),
        raw_event(ev))


def load_replay(engine: ProcessEngine, session: Session, instance: InstanceView, step: int | None) -> ReplayStep:
    """Step ``step`` of a case (default: the newest), read through the history service."""
    events = engine.history.events(instance.id)
    words = CaseLabels.load(engine, session, instance.deployment_id)
    return replay_step(instance, words, events, step if step is not None else len(events),
                       engine.history.task_due_dates(instance.id))


# --- the event log ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogEntry:
    """One event of the event log: an activity (a task of the diagram) starting or completing."""

    case: str
    activity: str
    timestamp: datetime
    resource: str | None
    group: str | None
    lifecycle: str  # start | complete
    element: str
    process: str
    version: int


CSV_COLUMNS = ("case:concept:name", "concept:name", "time:timestamp", "org:resource", "org:group",
               "lifecycle:transition", "element", "process", "version")
XES_NS = "http://www.xes-standard.org/"
XES_EXTENSIONS = (("Concept", "concept", "http://www.xes-standard.org/concept.xesext"),
                  ("Time", "time", "http://www.xes-standard.org/time.xesext"),
                  ("Organizational", "org", "http://www.xes-standard.org/org.xesext"),
                  ("Lifecycle", "lifecycle", "http://www.xes-standard.org/lifecycle.xesext"))


@dataclass
class ExportFilter:
    """An export as asked for: process, version, cases received from/to (Beijing days, both inclusive)."""

    process: str = ""
    version: str = ""
    received_from: str = ""
    received_to: str = ""

    @classmethod
    def from_args(cls, args: Any) -> ExportFilter:
        return cls(*(str(args.get(k, "") or "").strip()[:40] for k in ("process", "version", "from", "to")))

    def log_filter(self, instances: Any = None) -> LogFilter:
        """The engine's filter; a malformed value is a :class:`QifuError` in Chinese naming the field."""
        from .search import day_start, parse_day

        version = None
        if self.version:
            if not self.version.isdigit() or not 0 < int(self.version) < 1_000_000:
                raise QifuError(f"版本应为正整数：“{self.version}”")
            version = int(self.version)
        if version is not None and not self.process:
            raise QifuError("按版本导出时须同时选择流程")
        start = parse_day(self.received_from, "受理日期（起）") if self.received_from else None
        end = parse_day(self.received_to, "受理日期（止）") if self.received_to else None
        if start and end and start > end:
            raise QifuError("受理日期（起）不能晚于受理日期（止）")
        return LogFilter(self.process or None, version, day_start(start) if start else None,
                         day_start(end + timedelta(days=1)) if end else None, instances)

    def args(self) -> dict[str, str]:
        return {k: v for k, v in (("process", self.process), ("version", self.version),
                                  ("from", self.received_from), ("to", self.received_to)) if v}

    def filename(self, today: date, extension: str) -> str:
        name = "-".join(["qifu-eventlog", self.process or "all"] + ([f"v{self.version}"] if self.version else []))
        return f"{name}-{today:%Y%m%d}.{extension}"


def visible_instances(user: Viewer) -> Any:
    """The instance ids ``user`` may see, as a subquery (:func:`web.scope.visible_cases`)."""
    return select(EnterpriseCase.instance_id).where(visible_cases(user))


def log_entries(engine: ProcessEngine, codes: Any, people: dict[str, labels.Person],
                rows: Iterator[LogRow]) -> Iterator[LogEntry]:
    """The event log of the history rows (case by case, in order): a user task starts at the step it opened
    in and completes at the step that completed it, by whoever completed it; other tasks (service tasks)
    complete in the step that ran them. Gateways and events are not activities. The history chain is the
    source (it is what verification vouches for); ``historic_task`` holds the same instants."""
    words: dict[int, CaseLabels] = {}
    for _, case_rows in groupby(rows, key=lambda r: r.instance_id):
        started: set[str] = set()
        for row in case_rows:
            w = words.get(row.deployment_id)
            if w is None:
                w = words[row.deployment_id] = CaseLabels(labels.diagram_words(engine, row.deployment_id),
                                                          codes, people)
            ev = row.event
            for c in ev.completed:
                if not w.is_task(c.element):
                    continue
                # a user task is completed by whoever completed it; anything else ran as part of the step
                resource = w.actor(ev.actor, ev.action) if c.is_user_task and c.task == ev.task_guid else "系统"
                yield LogEntry(row.business_key, w.element(c.element), ev.at, resource, w.lane(c.element),
                               "complete", c.element, row.process_key, row.version)
            for a in ev.active or []:
                if a.state == "ready" and a.task and a.task not in started and w.is_task(a.element):
                    started.add(a.task)
                    yield LogEntry(row.business_key, w.element(a.element), ev.at, None, w.lane(a.element),
                                   "start", a.element, row.process_key, row.version)


def _stamp(at: datetime) -> str:
    return at.astimezone(SHANGHAI).isoformat(timespec="milliseconds")


_CHUNK = 64 * 1024


def csv_chunks(entries: Iterator[LogEntry]) -> Iterator[bytes]:
    """The event log as CSV (UTF-8, one header row, pm4py's column names), in chunks as it is read."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(CSV_COLUMNS)
    for e in entries:
        out.writerow([safe_text(e.case), safe_text(e.activity), _stamp(e.timestamp), safe_text(e.resource or ""),
                      safe_text(e.group or ""), e.lifecycle, safe_text(e.element), safe_text(e.process),
                      e.version])
        if buf.tell() > _CHUNK:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode("utf-8")


def _attr(kind: str, key: str, value: str) -> etree._Element:
    return etree.Element(f"{{{XES_NS}}}{kind}", key=key, value=value)


def xes_chunks(entries: Iterator[LogEntry], *, name: str) -> Iterator[bytes]:
    """The event log as XES (IEEE 1849-2016) written incrementally with lxml: one trace per case."""
    buf = io.BytesIO()
    with etree.xmlfile(buf, encoding="utf-8") as xf:
        xf.write_declaration()
        with xf.element(f"{{{XES_NS}}}log", {"xes.version": "1849-2016", "xes.features": "nested-attributes"},
                        nsmap={None: XES_NS}):
            for ext_name, prefix, uri in XES_EXTENSIONS:
                xf.write(etree.Element(f"{{{XES_NS}}}extension", name=ext_name, prefix=prefix, uri=uri))
            for scope, keys in (("trace", ("concept:name",)),
                                ("event", ("concept:name", "time:timestamp", "lifecycle:transition"))):
                glob = etree.Element(f"{{{XES_NS}}}global", scope=scope)
                for key in keys:
                    if key == "time:timestamp":
                        glob.append(_attr("date", key, "1970-01-01T00:00:00.000+00:00"))
                    else:
                        glob.append(_attr("string", key, "complete" if key.startswith("lifecycle") else "UNKNOWN"))
                xf.write(glob)
            xf.write(etree.Element(f"{{{XES_NS}}}classifier", name="Activity", keys="concept:name"))
            xf.write(etree.Element(f"{{{XES_NS}}}classifier", name="Activity and lifecycle",
                                   keys="concept:name lifecycle:transition"))
            xf.write(_attr("string", "concept:name", name))
            for case, group in groupby(entries, key=lambda e: e.case):
                with xf.element(f"{{{XES_NS}}}trace"):
                    xf.write(_attr("string", "concept:name", case))
                    first = True
                    for e in group:
                        if first:
                            xf.write(_attr("string", "process", e.process))
                            xf.write(_attr("int", "version", str(e.version)))
                            first = False
                        event = etree.Element(f"{{{XES_NS}}}event")
                        event.append(_attr("string", "concept:name", e.activity))
                        event.append(_attr("date", "time:timestamp", _stamp(e.timestamp)))
                        if e.resource:
                            event.append(_attr("string", "org:resource", e.resource))
                        if e.group:
                            event.append(_attr("string", "org:group", e.group))
                        event.append(_attr("string", "lifecycle:transition", e.lifecycle))
                        event.append(_attr("string", "element", e.element))
                        xf.write(event)
                xf.flush()
                if buf.tell() > _CHUNK:
                    yield buf.getvalue()
                    buf.seek(0)
                    buf.truncate()
    yield buf.getvalue()


def export_chunks(engine: ProcessEngine, flt: LogFilter, fmt: str, *, name: str) -> Iterator[bytes]:
    """The whole export, streamed: history pages (keyset), worded, written as ``fmt`` (xes | csv). Names are
    read first in a short read transaction; each history page then in one of its own."""
    from ..labels import CodeNames

    check_format(fmt)
    with engine.read() as session:
        codes, people = CodeNames.load(session), labels.load_people(session)
    entries = log_entries(engine, codes, people, engine.history.event_log(flt))
    yield from (xes_chunks(entries, name=name) if fmt == "xes" else csv_chunks(entries))


EXPORT_FORMATS = {"xes": "application/xml", "csv": "text/csv; charset=utf-8"}


def check_format(fmt: str) -> str:
    if fmt not in EXPORT_FORMATS:
        raise QifuError(f"导出格式应为 xes 或 csv：“{fmt[:20]}”")
    return fmt


# --- the verification page -------------------------------------------------------------------------------
@dataclass
class BrokenChain:
    """A chain that does not verify: its case, the first broken row and every problem found."""

    business_key: str
    instance_id: int
    first: Any  # engine.history.Problem
    problems: list[Any]

    @property
    def first_kind(self) -> str:
        return labels.PROBLEM_KINDS.get(self.first.kind, self.first.kind)


def broken_chains(engine: ProcessEngine, problems: list[Any]) -> list[BrokenChain]:
    """Problems grouped by chain, each with its first broken row (lowest seq), in instance order."""
    from engine.history import first_broken

    first = first_broken(problems)
    views = engine.runtime.instances(sorted(first)) if first else {}
    return [BrokenChain(views[iid].business_key if iid in views else f"#{iid}", iid, p,
                        [q for q in problems if q.instance_id == iid]) for iid, p in sorted(first.items())]


@dataclass
class UnmaskEntry:
    at: datetime
    who: str
    username: str
    business_key: str
    field: str
    reason: str | None
    ip: str | None


@dataclass
class UnmaskPage:
    rows: list[UnmaskEntry]
    total: int
    page: int
    pages: int


def unmask_log(session: Session, user: Viewer, *, page: int = 1, page_size: int = 50,
               business_key: str | None = None) -> UnmaskPage:
    """Who revealed which contact of which case, when and why — for the cases ``user`` may see, newest first."""
    from sqlalchemy import func

    from ..labels import CodeNames
    from ..models import UnmaskLog

    where = [UnmaskLog.business_key.in_(select(EnterpriseCase.business_key).where(visible_cases(user)))]
    if business_key:
        where.append(UnmaskLog.business_key == business_key)
    total = session.scalar(select(func.count()).select_from(UnmaskLog).where(*where)) or 0
    pages = max(1, -(-total // page_size))
    page = min(page, pages)
    rows = session.scalars(select(UnmaskLog).where(*where).order_by(UnmaskLog.at.desc(), UnmaskLog.id.desc())
                           .limit(page_size).offset((page - 1) * page_size)).all()
    words = CaseLabels(labels.DiagramWords(), CodeNames.load(session), labels.load_people(session))
    return UnmaskPage([UnmaskEntry(r.at, words.actor(r.username), r.username, r.business_key,
                                   labels.variable(r.field), r.reason, r.ip) for r in rows], total, page, pages)
