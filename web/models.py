"""The web layer's own tables: users and their roles, login attempts, unmask log, attachments.

They share :class:`engine.models.Base` so one Alembic history covers everything (migration ``0003_web``).
Why each exists:

- ``app_user`` / ``user_role``: a clerk belongs to one unit (``org_unit.code``) and holds roles; roles are
  the candidate groups of the diagrams (docs/domain.md), so "my groups' tasks" is a set intersection.
- ``login_attempt``: throttling lives in the DATABASE, not in process memory, so several ``qifu serve``
  processes (and restarts) agree on who is locked out.
- ``unmask_log``: every time someone sees a contact's full phone or ID number, who, which case, which field,
  when and why (the reason they gave) — personal data access must be accountable (PIPL).
- ``attachment``: files stay outside the case data (the history and the instance state would otherwise grow
  with every upload); the bytes live under ``var/attachments/<sha256>``, one row per upload.
- ``admin_log``: every change an administrator makes (users, units, API clients, the calendar), who and when,
  on the admin pages and with the ``qifu`` command alike (:mod:`web.admin`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.models import Base, UTCDateTime


class User(Base):
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    unit_code: Mapped[str] = mapped_column(String(50), index=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # a temporary password from a reset (shown once to the administrator): replaced before anything else
    must_change_password: Mapped[bool] = mapped_column(default=False, server_default=false())

    roles: Mapped[list[UserRole]] = relationship(back_populates="user", cascade="all, delete-orphan",
                                                 lazy="selectin")

    @property
    def role_names(self) -> list[str]:
        return sorted(r.role for r in self.roles)


class UserRole(Base):
    __tablename__ = "user_role"
    __table_args__ = (UniqueConstraint("user_id", "role", name="uq_user_role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(100), index=True)

    user: Mapped[User] = relationship(back_populates="roles")


class LoginAttempt(Base):
    __tablename__ = "login_attempt"
    __table_args__ = (Index("ix_login_attempt_who", "username", "ip", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100))
    ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    success: Mapped[bool] = mapped_column()


class UnmaskLog(Base):
    __tablename__ = "unmask_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), index=True)
    business_key: Mapped[str] = mapped_column(String(200), index=True)
    field: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(500))  # None only on rows logged before reasons were asked


class Attachment(Base):
    __tablename__ = "attachment"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id", ondelete="CASCADE"), index=True)
    task_guid: Mapped[str | None] = mapped_column(String(36))
    filename: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(10))  # pdf | png | jpg | docx | xlsx
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    uploaded_by: Mapped[str] = mapped_column(String(100))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AdminLog(Base):
    """One administrator's change: who, when, what kind, which user/unit/client/day, and the values it set."""

    __tablename__ = "admin_log"
    __table_args__ = (Index("ix_admin_log_at", "at", "id"), Index("ix_admin_log_actor", "actor", "at", "id"),
                      Index("ix_admin_log_kind", "kind", "at", "id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(String(1000))
    details_json: Mapped[str] = mapped_column(Text)  # the values set (never a password or a token)
