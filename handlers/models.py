"""The application's domain tables: units, reference data, cases and what handlers record about them.

They live on :class:`engine.models.Base` (same metadata, so Alembic sees them), but nothing in ``engine/``
reads them: the engine stores process state; these tables store the *business* view of a case that the
ledger, the supervision pages and the monthly briefing query without unpacking SpiffWorkflow state.

Only service-task handlers (``handlers/*.py``, inside the step's transaction), intake and the reference
loader write them, so a row always agrees with the step that produced it: if the step rolls back, so does
the row.

Codes, not ids, link a case to units, channels and categories: codes appear in diagrams and case data and
survive a reload of the reference data.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.models import Base, UTCDateTime

UNIT_KINDS = ("station", "window", "county_window", "centre", "special_team", "department", "town",
              "leading_group")
REGIONS = ("pan_an", "fenghua")
LEDGER_STATUSES = ("handling", "answered", "closed", "carried")
LEDGER_STATUS_NAMES = {"handling": "办理中", "answered": "已答复", "closed": "销账", "carried": "挂账"}
SATISFACTION_VALUES = ("满意", "基本满意", "不满意")
CASE_UNIT_ROLES = ("handling", "co_handling", "escalated")
SUPERVISION_KINDS = ("催办", "督办")


class OrgUnit(Base):
    """A unit that receives, handles or oversees cases: a Pan'an station/window, the county's 难事办理窗口,
    the Fenghua centre, a member unit of the "1+X" organisation, the leading group.

    ``liaison_name``/``liaison_phone`` are the unit's 联络员 (FH-9), typed in by an administrator; reloading
    the reference data never overwrites them, nor any field listed in ``edited`` (set by ``qifu unit set``).
    """

    __tablename__ = "org_unit"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    short_name: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20), index=True)
    region: Mapped[str] = mapped_column(String(20), index=True)
    address: Mapped[str | None] = mapped_column(String(300))
    phone: Mapped[str | None] = mapped_column(String(50))
    liaison_name: Mapped[str | None] = mapped_column(String(100))
    liaison_phone: Mapped[str | None] = mapped_column(String(50))
    resident: Mapped[bool] = mapped_column(Boolean, default=False)  # 1+X: member of the resident special team
    group_role: Mapped[str | None] = mapped_column(String(20))      # 领导小组: 组长 / 副组长 / 成员 / 列席
    group_member: Mapped[str | None] = mapped_column(String(100))   # the unit's person on the leading group
    note: Mapped[str | None] = mapped_column(String(500))           # e.g. why a station is a 站 or a 窗口
    sort: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    edited: Mapped[str] = mapped_column(String(300), default="")   # fields an administrator changed


class Category(Base):
    """A problem category of FH-1 (top level, or a sub-item with ``parent_code``). ``region`` None: both."""

    __tablename__ = "category"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    parent_code: Mapped[str | None] = mapped_column(String(40))
    region: Mapped[str | None] = mapped_column(String(20))
    sort: Mapped[int] = mapped_column(Integer, default=0)


class Channel(Base):
    """An intake channel (FH-2, and Pan'an's two sources); every case records the one it came through."""

    __tablename__ = "channel"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    mode: Mapped[str] = mapped_column(String(10))  # offline | online
    region: Mapped[str] = mapped_column(String(20), index=True)
    detail: Mapped[str | None] = mapped_column(String(200))  # hotline number, address of the platform
    sort: Mapped[int] = mapped_column(Integer, default=0)


class EnterpriseCase(Base):
    """The ledger row of one case (企业服务台账 / 诉求办理台账): written by ``ledger`` at registration and kept in
    step with the case by every handler. One per process instance."""

    __tablename__ = "enterprise_case"
    # The read side's indexes (migration 0012 says which page each one serves): each holds every column its
    # query reads, so a page of the ledger, tracking, search or the inbox reads no wide row it does not show.
    __table_args__ = (Index("ix_enterprise_case_region_received", "region", "received_at", "unit"),
                      Index("ix_enterprise_case_region_status", "region", "ledger_status", "overdue", "unit"),
                      Index("ix_enterprise_case_region_open", "region", "unit", "ledger_status", "overdue",
                            "instance_id", "answered_working_days", "business_key"),
                      Index("ix_enterprise_case_scope", "instance_id", "region", "unit"),
                      Index("ix_enterprise_case_answered", "region", "answered_at"),
                      Index("ix_enterprise_case_region_closed", "region", "closed_at", "received_at", "unit"),
                      Index("ix_enterprise_case_text_scan", "received_at", "id", "region", "unit", "business_key",
                            "enterprise_name", "credit_code"),
                      Index("ix_enterprise_case_closed_at", "closed_at"),
                      Index("ix_enterprise_case_enterprise_name", "enterprise_name"))

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id", ondelete="CASCADE"), unique=True)
    business_key: Mapped[str] = mapped_column(String(40), unique=True)
    process_key: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(20), index=True)
    unit: Mapped[str] = mapped_column(String(40), index=True)
    channel: Mapped[str | None] = mapped_column(String(40))
    category: Mapped[str | None] = mapped_column(String(40))
    enterprise_name: Mapped[str] = mapped_column(String(200))
    credit_code: Mapped[str | None] = mapped_column(String(18))
    contact_name: Mapped[str | None] = mapped_column(String(100))
    contact_phone: Mapped[str | None] = mapped_column(String(30))
    contact_id_number: Mapped[str | None] = mapped_column(String(18))
    title: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    tracking_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    classification: Mapped[str | None] = mapped_column(String(40))
    scope: Mapped[str | None] = mapped_column(String(40))
    ledger_status: Mapped[str] = mapped_column(String(20), index=True, default="handling")
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    handling_unit: Mapped[str | None] = mapped_column(String(40), index=True)
    transferred_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_to: Mapped[str | None] = mapped_column(String(40))
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_late: Mapped[bool | None] = mapped_column(Boolean)
    answered_working_days: Mapped[int | None] = mapped_column(Integer)  # receipt → answer, working days
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    satisfaction: Mapped[str | None] = mapped_column(String(10))
    revisit_selected: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    units: Mapped[list[CaseUnit]] = relationship(back_populates="case", cascade="all, delete-orphan",
                                                 order_by="CaseUnit.id")


class CaseUnit(Base):
    """A unit involved in a case: handling (承办), co-handling (共同承办, joint review) or escalated (上报)."""

    __tablename__ = "case_unit"
    __table_args__ = (UniqueConstraint("case_id", "unit_code", "role", name="uq_case_unit_role"),
                      Index("ix_case_unit_unit_case", "unit_code", "case_id"),  # the cases involving a unit
                      Index("ix_case_unit_at", "at"))  # the transfers of a month (briefing)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("enterprise_case.id", ondelete="CASCADE"), index=True)
    unit_code: Mapped[str] = mapped_column(String(40))
    role: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    opinion: Mapped[str | None] = mapped_column(Text)

    case: Mapped[EnterpriseCase] = relationship(back_populates="units")


class JointReview(Base):
    """A joint review meeting (专班商办 / 会商共审, FH-5): who handles, who was invited, when it met."""

    __tablename__ = "joint_review"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("enterprise_case.id", ondelete="CASCADE"), index=True)
    units: Mapped[str] = mapped_column(String(1000))      # comma-separated unit codes
    invitees: Mapped[str] = mapped_column(String(1000), default="")
    meeting_at: Mapped[datetime] = mapped_column(UTCDateTime)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Outbox(Base):
    """A message to send (SMS to the enterprise, notice to a unit's liaison or a role), written in the step's
    transaction and delivered later by ``qifu outbox send``: a case never waits for, nor rolls back because
    of, a gateway."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "sent_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instance.id", ondelete="CASCADE"), index=True)
    business_key: Mapped[str | None] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(100))   # enterprise | unit code | role name
    address: Mapped[str | None] = mapped_column(String(100))  # phone number, when known
    template: Mapped[str | None] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class RevisitDraw(Base):
    """One revisit sampling decision (PA-8), with everything needed to recompute and audit it."""

    __tablename__ = "revisit_draw"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("enterprise_case.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    rate: Mapped[float] = mapped_column(Float)
    policy_version: Mapped[str] = mapped_column(String(40))
    seed: Mapped[str] = mapped_column(String(200))        # the hashed text
    draw: Mapped[int] = mapped_column(Integer)            # sha256(seed) mod 10000
    threshold: Mapped[int] = mapped_column(Integer)       # rate * 10000: selected when draw < threshold
    selected: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(300))
    drawn_at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str | None] = mapped_column(String(200))


class Rating(Base):
    """A satisfaction rating (满意度评价) given by the enterprise or recorded by staff at the revisit."""

    __tablename__ = "rating"
    __table_args__ = (Index("ix_rating_at", "at"),)  # the ratings of a month (briefing)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("enterprise_case.id", ondelete="CASCADE"), index=True)
    value: Mapped[str] = mapped_column(String(10))
    comment: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(20))  # revisit | enterprise | staff
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Supervision(Base):
    """A 催办 (reminder) or 督办 (formal supervision) on a case, against the unit handling it then."""

    __tablename__ = "supervision"
    __table_args__ = (Index("ix_supervision_at", "at"),)  # the supervisions of a month (briefing)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("enterprise_case.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    unit_code: Mapped[str | None] = mapped_column(String(40), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class BusinessKeyCounter(Base):
    """The last number given out under a business-key prefix (``PA-20260930-``): numbering reads one row, never
    the keys already taken, and runs in the start's transaction, so a refused start leaves no gap."""

    __tablename__ = "business_key_counter"

    prefix: Mapped[str] = mapped_column(String(40), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)
