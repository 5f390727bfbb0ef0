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
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.selectable import Alias

from engine.calendar import WorkdayCalendar
from engine.process_engine import ProcessEngine
from engine.tasks import TASK_INSTANCE_ID, OpenTask, TaskQuery
from handlers.models import CaseUnit, Category, Channel, EnterpriseCase, OrgUnit

from .. import labels
from ..auth import CurrentUser
from ..scope import may_see_case, sees_region, visible_cases, visible_instance_ids
from .cases import CaseSummary, case_summaries
from .deadlines import Deadline, deadline, due_soon_bound

SCOPE_INDEX = "ix_enterprise_case_scope"  # migration 0012: (instance_id, region, unit)


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


class _ScopeCase(Alias):
    """``enterprise_case`` as the inbox's per-task probe reads it: on SQLite ``INDEXED BY`` the scope index.

    SQLite answers ``instance_id = ?`` on a table by its unique index before weighing any other (and then
    reads the wide row for the unit and region); the scope index holds all three. Named, so a missing index
    is an error, not a slow page."""

    inherit_cache = True


@compiles(_ScopeCase, "sqlite")
def _indexed_by_scope(element: _ScopeCase, compiler: Any, **kw: Any) -> str:
    text = compiler.visit_alias(element, **kw)
    return f"{text} INDEXED BY {SCOPE_INDEX}" if kw.get("asfrom") else text


def case_filter(user: CurrentUser, filters: InboxFilters, dialect: str = "") -> Any:
    """The instances whose tasks may appear: the viewer's scope and the filters on case fields, as a subquery.

    Its shape follows who looks (the rule is the same, :mod:`web.scope`):

    - a unit's clerk sees a few thousand cases: the set of their instance ids is built from indexes
      (:func:`web.scope.visible_instance_ids`) and the inbox reads those cases' tasks only;
    - a region-wide viewer sees half the database: on SQLite the subquery is correlated with the task
      (``instance_id = human_task.instance_id``) and probes ``ix_enterprise_case_scope (instance_id, region,
      unit)``, which holds everything the scope reads — the inbox walks the tasks in due order and stops at
      the page, the count reads no case row. PostgreSQL plans the plain subquery as a hashed semi-join, its
      best shape (a correlated one would run once per task).
    """
    correlated = dialect == "sqlite" and sees_region(user)
    ec: Any = EnterpriseCase
    if correlated:
        ec = aliased(EnterpriseCase, _ScopeCase._construct(EnterpriseCase.__table__, name="scope_case"))
        query = select(ec.instance_id).where(ec.instance_id == TASK_INSTANCE_ID, visible_cases(user, ec))
    elif not (filters.unit or filters.category or filters.channel):
        return visible_instance_ids(user)
    else:
        query = select(ec.instance_id).where(ec.instance_id.in_(visible_instance_ids(user)))
    if filters.unit:
        involved = select(CaseUnit.case_id).where(CaseUnit.unit_code == filters.unit)
        query = query.where((ec.unit == filters.unit) | ec.id.in_(involved))
    if filters.category:
        query = query.where(ec.category == filters.category)
    if filters.channel:
        query = query.where(ec.channel == filters.channel)
    return query


def inbox(engine: ProcessEngine, session: Session, user: CurrentUser, filters: InboxFilters,
          calendar: WorkdayCalendar, now: datetime, page: int = 1, page_size: int = 50) -> Page:
    """One page of the user's inbox, due first, with how many tasks there are in all."""
    everything = filters.scope == "all" and user.is_supervisor
    query = TaskQuery(groups=None if everything else tuple(user.roles),
                      assignee=None if everything else user.username,
                      instances=case_filter(user, filters, session.get_bind().dialect.name),
                      process_key=filters.process or None)
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

