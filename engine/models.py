"""The engine's tables, as SQLAlchemy 2 typed models.

Spec (what a diagram says) lives in :class:`Deployment`, once per version; what happened lives in
:class:`Instance` (state without the spec), :class:`HumanTask`, :class:`Timer` and :class:`Event`.
Only :mod:`engine.runtime` writes instance, task, timer and event rows, in one transaction per step.
Application tables (cases, units, ...) belong to ``web``/``handlers`` and share :class:`Base`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class _UTCDateTime(TypeDecorator):
    """Timestamps stored as UTC and always read back timezone-aware.

    PostgreSQL keeps the zone; SQLite hands back naive values (UTC wall time). Without this, code that reads a
    due instant back from SQLite could take it for Shanghai wall time and fire a timer eight hours early.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the engine stores aware UTC instants only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UTCDateTime = _UTCDateTime()


class Deployment(Base):
    """One version of one process diagram. The same content deployed again creates no new row."""

    __tablename__ = "deployment"
    __table_args__ = (UniqueConstraint("process_key", "version", name="uq_deployment_key_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    process_key: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(String(400))
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str | None] = mapped_column(String(400))
    # Large and immutable: loaded only when asked for (the parsed spec is cached in memory per version).
    xml: Mapped[str] = mapped_column(Text, deferred=True)
    spec_json: Mapped[str] = mapped_column(Text, deferred=True)
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deployed_by: Mapped[str | None] = mapped_column(String(200))


class Instance(Base):
    """A running or finished case of one deployment. ``state_json`` is SpiffWorkflow's state minus the spec."""

    __tablename__ = "instance"

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployment.id"), index=True)
    business_key: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(20), index=True)  # running | completed | cancelled
    state_json: Mapped[str] = mapped_column(Text)
    data_json: Mapped[str] = mapped_column(Text, default="{}")  # current case data, for lists and replay deltas
    version: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_by: Mapped[str | None] = mapped_column(String(200))
    # The earliest due instant of its open user tasks, kept by every step: lists sort and filter by it.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # Head of this instance's hash chain: deleting the newest event is detected against these.
    history_seq: Mapped[int] = mapped_column(Integer, default=0)
    history_hash: Mapped[str] = mapped_column(String(64), default="")


class HumanTask(Base):
    """An open user task (a READY user task of an instance), derived after every step."""

    __tablename__ = "human_task"

    id: Mapped[int] = mapped_column(primary_key=True)
    # indexed with ``name`` (ix_human_task_instance_name, below)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id", ondelete="CASCADE"))
    task_guid: Mapped[str] = mapped_column(String(36), unique=True)
    spec_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(400))
    lane: Mapped[str | None] = mapped_column(String(400))
    candidate_groups: Mapped[str] = mapped_column(String(1000), default="")  # comma-separated
    assignee: Mapped[str | None] = mapped_column(String(200))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    due_provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


# Lists join a case to its instance for the status and the earliest deadline only: this index holds both, so
# they never read the instance row (on SQLite the columns after state_json sit in overflow pages).
Index("ix_instance_open", Instance.id, Instance.status, Instance.due_at)


# A case's open tasks by instance, with their names: the tracking board counts the cases waiting at each step
# from this index alone (never a task row); it also serves every lookup by instance (it replaced the index on
# instance_id alone, so a step writes no more index entries than before).
Index("ix_human_task_instance_name", HumanTask.instance_id, HumanTask.name)

# The inbox's order (due first, tasks without a due date last): an index in that order pages without sorting.
Index("ix_human_task_due_order", HumanTask.due_at.is_(None), HumanTask.due_at, HumanTask.id)
# Partial: most tasks open unclaimed and close uncompleted-by-anyone-yet, and a step then writes no entry.
# ``assignee = :user`` / ``completed_by = :user`` imply IS NOT NULL, so both databases use them for those.
_ASSIGNED = text("assignee IS NOT NULL")
Index("ix_human_task_assignee", HumanTask.assignee, sqlite_where=_ASSIGNED, postgresql_where=_ASSIGNED)


class TaskCandidate(Base):
    """One candidate group of an open task (Camunda's identity link): the inbox finds a group's tasks by index."""

    __tablename__ = "task_candidate"
    __table_args__ = (Index("ix_task_candidate_group", "group_name", "task_guid"),
                      {"sqlite_with_rowid": False})  # the primary key is the table: one b-tree less per step

    task_guid: Mapped[str] = mapped_column(ForeignKey("human_task.task_guid", ondelete="CASCADE"),
                                           primary_key=True)
    group_name: Mapped[str] = mapped_column(String(200), primary_key=True)


class HistoricTask(Base):
    """Every user task an instance ever opened, kept after it closes (Camunda's historic task instance).

    Written with the open-task row and closed with it, in the step's transaction. It answers "which case
    does this task id belong to" by an indexed lookup (a closed task's link still leads to its case), who
    completed what (a clerk's finished cases), and when a task started and ended (event-log exports).
    """

    __tablename__ = "historic_task"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id", ondelete="CASCADE"), index=True)
    task_guid: Mapped[str] = mapped_column(String(36), unique=True)
    spec_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(400))
    candidate_groups: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(20))  # completed | cancelled (None while open)
    completed_by: Mapped[str | None] = mapped_column(String(200))


# A clerk's 已办, newest first: only completed rows have an entry (a task opens with none).
_COMPLETED = text("completed_by IS NOT NULL")
Index("ix_historic_task_completed_by", HistoricTask.completed_by, HistoricTask.ended_at, HistoricTask.id,
      sqlite_where=_COMPLETED, postgresql_where=_COMPLETED)


class Timer(Base):
    """A waiting timer event with its due instant. Fired exactly once: ``fired_at`` is set by one claimer."""

    __tablename__ = "timer"
    __table_args__ = (Index("ix_timer_due_open", "status", "due_at"),
                      # only claimed rows carry a lease: the next one to run out is found without a scan
                      Index("ix_timer_claim_expires", "claim_expires_at",
                            postgresql_where=text("claim_expires_at IS NOT NULL"),
                            sqlite_where=text("claim_expires_at IS NOT NULL")))

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id", ondelete="CASCADE"), index=True)
    task_guid: Mapped[str] = mapped_column(String(36))  # found by (instance_id, …): no index of its own
    spec_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # date | duration | cycle
    interrupting: Mapped[bool | None] = mapped_column(Boolean)  # None unless a boundary event
    attached_to: Mapped[str | None] = mapped_column(String(200))
    occurrence: Mapped[int] = mapped_column(Integer, default=1)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20))  # waiting | fired | cancelled
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(200))  # the executor that claimed (and fired) it
    # An executor's claim on a due row lasts until then; a later one takes over (a killed executor's rows).
    claim_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class SignalWait(Base):
    """A catch event waiting for a signal (Camunda's event subscription): what a broadcast finds its cases by.

    A row exists while its event waits; the step that stops the wait deletes it (see :mod:`engine.signals`).
    """

    __tablename__ = "signal_wait"
    __table_args__ = (Index("ix_signal_wait_name", "name", "instance_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id", ondelete="CASCADE"), index=True)
    task_guid: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(200))


class Incident(Base):
    """A timer firing or a queued job that used up its retries (Camunda's incident): shown to administrators
    until retried successfully or resolved, so no deadline is ever dropped silently."""

    __tablename__ = "incident"
    __table_args__ = (Index("ix_incident_status_id", "status", "id"),
                      Index("ix_incident_job", "job_type", "job_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # timer | job
    status: Mapped[str] = mapped_column(String(20))  # open | resolved
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instance.id", ondelete="SET NULL"), index=True)
    business_key: Mapped[str | None] = mapped_column(String(200))
    element: Mapped[str | None] = mapped_column(String(200))  # the element that failed (service task, timer)
    timer_id: Mapped[int | None] = mapped_column(ForeignKey("timer.id", ondelete="SET NULL"), index=True)
    job_type: Mapped[str | None] = mapped_column(String(50))  # the queue of a job incident (e.g. outbox)
    job_id: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text)
    retries: Mapped[int] = mapped_column(Integer, default=0)  # attempts made, including retries asked for
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolution: Mapped[str | None] = mapped_column(String(20))  # retried | requeued | cancelled | resolved
    note: Mapped[str | None] = mapped_column(Text)  # why it was resolved by hand, what a retry found


class Event(Base):
    """One history event. Append-only; each row's hash covers its content and the previous row's hash, and its
    ``mac`` (``key id:HMAC``) that hash under a key kept outside the database (engine/history.py)."""

    __tablename__ = "event"
    # (instance_id, seq) is unique, and that index also finds a case's events: every step writes one row, so an
    # index more is a page more in every step's commit
    __table_args__ = (UniqueConstraint("instance_id", "seq", name="uq_event_instance_seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(50))
    task_guid: Mapped[str | None] = mapped_column(String(36))
    spec_id: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[str] = mapped_column(Text)  # canonical JSON: data delta, task changes, details
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str | None] = mapped_column(String(120))  # None only on rows written before the keyed chain


class Workday(Base):
    """One calendar day of a year whose schedule is known: working or not, and who said so."""

    __tablename__ = "workday"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    is_workday: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(50))  # chinesecalendar | import:FILE | admin


class CalendarYear(Base):
    """A year whose official schedule is loaded; days of other years follow the fallback rule (provisional)."""

    __tablename__ = "calendar_year"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(200))
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime)
