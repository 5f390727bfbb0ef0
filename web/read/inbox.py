"""The inbox: one page of open tasks — mine and my groups', or (for supervisors) every task I may see — due first.

The engine's task service finds, counts and pages the tasks in SQL (candidate groups and assignee by index);
which cases may appear is one subquery over the ledger with the viewer's scope and the page's filters on case
fields, sent along in the same statement. Only the page's rows are then read in full.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.calendar import WorkdayCalendar
from engine.process_engine import ProcessEngine
from engine.tasks import OpenTask, TaskQuery
from handlers.models import CaseUnit, Category, Channel, EnterpriseCase, OrgUnit

from .. import labels
from ..auth import CurrentUser
from ..scope import may_see_case, visible_cases
from .cases import CaseSummary, case_summaries
from .deadlines import Deadline, deadline, due_soon_bound


@dataclass
class InboxFilters:
    scope: str = "mine"  # mine: my tasks and my groups' tasks; all: every open task I may see (supervisors)
    process: str = ""
    unit: str = ""
    category: str = ""
    channel: str = ""
    status: str = ""  # "" | mine | unclaimed | claimed | overdue | due_soon

    @classmethod
    def from_args(cls, args: Any) -> InboxFilters:
        def get(name: str) -> str:
            return str(args.get(name, "") or "").strip()[:100]

        status = get("status")
        return cls(scope="all" if get("scope") == "all" else "mine", process=get("process"), unit=get("unit"),
                   category=get("category"), channel=get("channel"),
                   status=status if status in labels.TASK_STATUS else "")


@dataclass
class InboxRow:
    task: OpenTask
    case: CaseSummary
    groups: list[str]
    deadline: Deadline


@dataclass
class Page:
    rows: list[InboxRow]
    page: int
    pages: int
    total: int


def task_offered_to(user: CurrentUser, task: OpenTask) -> bool:
    """Assigned to the user, or unassigned and offered to one of the user's roles."""
    if task.assignee:
        return task.assignee == user.username
    return user.holds_any(task.candidate_groups)


def may_work_on(user: CurrentUser, task: OpenTask, case: CaseSummary) -> bool:
    """Claim or complete: the task is offered to the user (or theirs) and the user may see the case."""
    return may_see_case(user, case.scope) and task_offered_to(user, task)


def case_filter(user: CurrentUser, filters: InboxFilters) -> Any:
    """The instances whose tasks may appear: the viewer's scope and the filters on case fields, as a subquery."""
    query = select(EnterpriseCase.instance_id).where(visible_cases(user))
    if filters.unit:
        involved = select(CaseUnit.case_id).where(CaseUnit.unit_code == filters.unit)
        query = query.where((EnterpriseCase.unit == filters.unit) | EnterpriseCase.id.in_(involved))
    if filters.category:
        query = query.where(EnterpriseCase.category == filters.category)
    if filters.channel:
        query = query.where(EnterpriseCase.channel == filters.channel)
    return query


def inbox(engine: ProcessEngine, session: Session, user: CurrentUser, filters: InboxFilters,
          calendar: WorkdayCalendar, now: datetime, page: int = 1, page_size: int = 50) -> Page:
    """One page of the user's inbox, due first, with how many tasks there are in all."""
    everything = filters.scope == "all" and user.is_supervisor
    query = TaskQuery(groups=None if everything else tuple(user.roles),
                      assignee=None if everything else user.username,
                      instances=case_filter(user, filters), process_key=filters.process or None)
    if filters.status == "mine":
        query = TaskQuery(assignee=user.username, instances=query.instances, process_key=query.process_key)
    elif filters.status == "unclaimed":
        query = replace(query, claimed=False)
    elif filters.status == "claimed":
        query = replace(query, claimed=True)
    elif filters.status == "overdue":
        query = replace(query, due_before=now)
    elif filters.status == "due_soon":
        query = replace(query, due_after=now, due_before=due_soon_bound(calendar, now))
    found = engine.tasks.query(query, page=page, page_size=page_size)
    cases = case_summaries(engine, session, [t.instance_id for t in found.rows])
    rows = [InboxRow(t, cases[t.instance_id], list(t.candidate_groups),
                     deadline(calendar, now, t.due_at, t.due_provisional))
            for t in found.rows if t.instance_id in cases]
    return Page(rows, found.page, found.pages, found.total)


@dataclass
class FilterChoices:
    processes: list[tuple[str, str]]
    units: list[tuple[str, str]]
    categories: list[tuple[str, str]]
    channels: list[tuple[str, str]]


def filter_choices(engine: ProcessEngine, session: Session, user: CurrentUser) -> FilterChoices:
    """Options of the inbox filters, limited to the user's region where the reference data has one."""
    processes = [(p.process_key, p.name or p.process_key) for p in engine.repository.processes()]
    unit_q = select(OrgUnit.code, OrgUnit.name).where(OrgUnit.active.is_(True)).order_by(OrgUnit.sort, OrgUnit.code)
    channel_q = select(Channel.code, Channel.name).order_by(Channel.sort, Channel.code)
    if user.region:
        unit_q = unit_q.where(OrgUnit.region == user.region)
        channel_q = channel_q.where(Channel.region == user.region)
    category_q = select(Category.code, Category.name, Category.parent_code).order_by(Category.sort, Category.code)
    categories = [(c, f"— {n}" if parent else n) for c, n, parent in session.execute(category_q).all()]
    return FilterChoices(processes, [(c, n) for c, n in session.execute(unit_q)], categories,
                         [(c, n) for c, n in session.execute(channel_q)])

