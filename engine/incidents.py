"""Incidents (Camunda Cockpit's): a timer firing or a queued job that used up its retries.

Giving up on a deadline must never be silent. When the executor gives up on a timer (or a job queue on a
job: :meth:`open_for_job`), it writes an ``incident`` row in the same transaction: the element that failed,
the error, the case, the timer or job, how many attempts were made. The row stays ``open`` until an
administrator retries it successfully (:meth:`engine.management.ManagementService.retry_incident`, through
the normal step) or resolves it with a reason. These functions are the only writers and readers of the
table; the web page, ``qifu incident`` and the metrics read it through the management service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .errors import ConflictError, NotFoundError, QifuError
from .models import Incident, Instance

OPEN, RESOLVED = "open", "resolved"
STATUSES = (OPEN, RESOLVED)
KINDS = ("timer", "job")
MAX_ERROR = 4000
PAGE_SIZE = 50


@dataclass(frozen=True)
class IncidentPage:
    """One page of incidents, newest first, with the total that matched and the counts by status."""

    rows: list[Incident]
    total: int
    page: int
    per_page: int
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _business_key(session: Session, instance_id: int | None) -> str | None:
    if instance_id is None:
        return None
    return session.scalar(select(Instance.business_key).where(Instance.id == instance_id))


def open_incident(session: Session, *, kind: str, error: str, now: datetime, retries: int,
                  instance_id: int | None = None, business_key: str | None = None, element: str | None = None,
                  timer_id: int | None = None, job_type: str | None = None, job_id: int | None = None) -> Incident:
    """Write an open incident in the caller's transaction (the one that gave up)."""
    if kind not in KINDS:
        raise ValueError(f"unknown incident kind {kind!r}")
    business_key = _business_key(session, instance_id) or business_key
    row = Incident(kind=kind, status=OPEN, instance_id=instance_id, business_key=business_key,
                   element=element, timer_id=timer_id, job_type=job_type, job_id=job_id, error=error[:MAX_ERROR],
                   retries=retries, created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    return row


def open_for_job(session: Session, job_type: str, job_id: int, *, error: str, now: datetime, retries: int,
                 instance_id: int | None = None, business_key: str | None = None,
                 element: str | None = None) -> Incident:
    """A queued job gave up: its open incident is updated (a requeued job failed again), else one is opened."""
    row = session.scalar(select(Incident).where(Incident.job_type == job_type, Incident.job_id == job_id,
                                                Incident.status == OPEN))
    if row is None:
        return open_incident(session, kind="job", error=error, now=now, retries=retries, instance_id=instance_id,
                             business_key=business_key, element=element, job_type=job_type, job_id=job_id)
    row.error, row.retries, row.updated_at = error[:MAX_ERROR], retries, now
    return row


def get_open(session: Session, incident_id: int) -> Incident:
    """The open incident ``incident_id``, locked for the caller's transaction; a clear error otherwise."""
    row = session.get(Incident, incident_id, with_for_update=True)
    if row is None:
        raise NotFoundError(f"异常事件 #{incident_id} 不存在")
    if row.status != OPEN:
        raise ConflictError(f"异常事件 #{incident_id} 已处理（{row.resolution or row.status}）")
    return row


def close(row: Incident, *, actor: str | None, now: datetime, resolution: str, note: str | None = None) -> None:
    row.status, row.resolution, row.resolved_by, row.resolved_at, row.updated_at = (
        RESOLVED, resolution, actor, now, now)
    if note:
        row.note = note[:MAX_ERROR]


def resolve(session: Session, incident_id: int, *, actor: str | None, note: str, now: datetime) -> Incident:
    """Close an open incident by hand: the administrator has dealt with it (``note`` says how)."""
    if not note or not note.strip():
        raise QifuError("必须填写处理说明")
    row = get_open(session, incident_id)
    close(row, actor=actor, now=now, resolution="resolved", note=note.strip())
    return row


def counts(session: Session) -> dict[str, int]:
    """Incidents by status: ``{"open": n, "resolved": m}`` (every status present, zero included)."""
    found = dict(session.execute(select(Incident.status, func.count(Incident.id)).group_by(Incident.status)).all())
    return {status: int(found.get(status, 0)) for status in STATUSES}


def page(session: Session, *, status: str | None = OPEN, kind: str | None = None, business_key: str | None = None,
         page: int = 1, per_page: int = PAGE_SIZE) -> IncidentPage:
    """One page of incidents, newest first (``status`` None: all)."""
    if status is not None and status not in STATUSES:
        raise QifuError(f"未知的异常事件状态“{status}”，可用：{'、'.join(STATUSES)}")
    if kind is not None and kind not in KINDS:
        raise QifuError(f"未知的异常事件类型“{kind}”，可用：{'、'.join(KINDS)}")
    if page < 1 or per_page < 1:
        raise QifuError("页码和每页条数必须是正整数")
    query = select(Incident)
    if status is not None:
        query = query.where(Incident.status == status)
    if kind is not None:
        query = query.where(Incident.kind == kind)
    if business_key:
        query = query.where(Incident.business_key == business_key)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = list(session.scalars(query.order_by(Incident.id.desc()).offset((page - 1) * per_page).limit(per_page)))
    return IncidentPage(rows, int(total), page, per_page, counts(session))
