"""Publishing the monthly 简报 to the member units (FH-10: 专班……形成简报发送各成员单位；简报报送区委作风办).

A supervisor publishes a month's briefing from its page: in one transaction, a notice per member unit of
the region (and 区委作风办, ``FH-ZFB``, for Fenghua) in the outbox — delivered by ``qifu outbox send`` to the
unit's liaison, else the unit's phone — with the link to the published briefing, and one ``admin_log`` row
(kind ``briefing_published``: who, when, which month, which units). Publishing again sends the notices
again and is logged again.

A published briefing (``/briefings/YYYY-MM``) is readable by every logged-in user of the region: it is the
region's document, the same one the supervisors' page renders. An unpublished month answers 404.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.process_engine import ProcessEngine
from handlers.models import OrgUnit, Outbox

from .admin import record
from .models import AdminLog
from .read.assessment import MEMBER_KINDS
from .read.monthly import MonthlyReport

KIND = "briefing_published"
ALSO = {"fenghua": ("FH-ZFB",)}  # 简报报送区委作风办


@dataclass(frozen=True)
class Publication:
    at: datetime
    actor: str
    units: list[str]
    sender: str


def target(region: str | None, month: str) -> str:
    return f"{region or 'all'}:{month}"


def recipients(session: Session, region: str | None) -> list[OrgUnit]:
    """The member units of ``region`` that receive the briefing, in display order."""
    wanted = OrgUnit.kind.in_(MEMBER_KINDS) | OrgUnit.code.in_(ALSO.get(region or "", ()))
    return list(session.scalars(select(OrgUnit).where(
        OrgUnit.active.is_(True), wanted, *([OrgUnit.region == region] if region else []))
        .order_by(OrgUnit.sort, OrgUnit.code)))


def publish(engine: ProcessEngine, doc: MonthlyReport, *, username: str, sender: str, link: str,
            now: datetime) -> Publication:
    """Queue the notices and log the publication (one transaction)."""
    body = f"【企服】{doc.title}已发布，请登录系统查阅：{link}（发布人：{sender}）"
    with engine.session() as session:
        units = recipients(session, doc.region)
        for unit in units:
            session.add(Outbox(instance_id=None, business_key=None, recipient=unit.code,
                               address=unit.liaison_phone or unit.phone, template="briefing", body=body,
                               created_at=now, attempts=0))
        codes = [u.code for u in units]
        record(session, actor=username, kind=KIND, target=target(doc.region, doc.month),
               summary=f"发布{doc.title}，通知 {len(codes)} 个单位", now=now,
               details={"month": doc.month, "region": doc.region, "units": codes, "sender": sender})
    return Publication(now, username, codes, sender)


def publications(session: Session, region: str | None, month: str) -> list[Publication]:
    """Every publication of the month's briefing, newest first (``ix_admin_log_kind``)."""
    rows = session.scalars(select(AdminLog).where(AdminLog.kind == KIND, AdminLog.target == target(region, month))
                           .order_by(AdminLog.at.desc(), AdminLog.id.desc()))
    out = []
    for row in rows:
        details = json.loads(row.details_json or "{}")
        out.append(Publication(row.at, row.actor, list(details.get("units") or []), str(details.get("sender") or "")))
    return out
