"""A unit's notices in the app (通知): what the outbox holds for the user's unit (or the user's roles) about the
unit's open cases — a supervisor's 催办, a deadline reminder to 中心工作人员 — and the region's published 简报.

The outbox rows are found through the unit's open cases (accepted by it, or transferred/joint-reviewed to it:
``ix_enterprise_case_region_open`` and ``ix_case_unit_unit_case``) and ``outbox.instance_id``, newest first,
at most :data:`LIMIT`: the page reads the unit's work in hand, never the whole outbox (which has no index by
recipient). Briefings come from the publication log (``ix_admin_log_kind``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, union_all
from sqlalchemy.orm import Session

from handlers.models import CaseUnit, EnterpriseCase, Outbox
from handlers.notify import TEMPLATE_NAMES

from ..models import AdminLog

LIMIT = 50


@dataclass(frozen=True)
class Notice:
    at: datetime
    kind: str
    business_key: str | None
    body: str


@dataclass(frozen=True)
class PublishedBriefing:
    month: str
    at: datetime
    summary: str


def unit_notices(session: Session, unit: str | None, region: str | None,
                 roles: frozenset[str] = frozenset()) -> list[Notice]:
    """The newest notices to ``unit`` or to one of ``roles`` (a diagram may notify a role) about the unit's
    open cases."""
    if not unit:
        return []
    ec = EnterpriseCase
    open_ = ec.ledger_status != "closed"
    cases = union_all(
        select(ec.instance_id).where(*([ec.region == region] if region else []), ec.unit == unit, open_),
        select(ec.instance_id).join(CaseUnit, CaseUnit.case_id == ec.id).where(CaseUnit.unit_code == unit, open_))
    rows = session.execute(
        select(Outbox.created_at, Outbox.template, Outbox.business_key, Outbox.body)
        .where(Outbox.instance_id.in_(select(cases.subquery().c[0])), Outbox.recipient.in_(sorted({unit, *roles})))
        .order_by(Outbox.created_at.desc(), Outbox.id.desc()).limit(LIMIT))
    return [Notice(at, TEMPLATE_NAMES.get(template or "", "通知"), key, body) for at, template, key, body in rows]


def published_briefings(session: Session, region: str | None, limit: int = 12) -> list[PublishedBriefing]:
    from ..publishing import KIND

    prefix = f"{region or 'all'}:"
    rows = session.execute(select(AdminLog.target, AdminLog.at, AdminLog.summary)
                           .where(AdminLog.kind == KIND, AdminLog.target.startswith(prefix))
                           .order_by(AdminLog.at.desc(), AdminLog.id.desc()).limit(limit * 3))
    seen: dict[str, PublishedBriefing] = {}
    for target, at, summary in rows:
        month = target[len(prefix):]
        seen.setdefault(month, PublishedBriefing(month, at, summary))
    return list(seen.values())[:limit]
