"""Tables of the intake side: API clients, idempotency records and rate-limit hits.

Everything that must hold across several web processes lives here in the database, never in process
memory: a retried API submission is recognised by a unique ``(client, key)`` row, and the public form's
rate limit counts rows, so two processes behind one load balancer enforce one limit.
Secrets are stored as SHA-256 digests only (API tokens, client IPs).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.models import Base, UTCDateTime


class ApiClient(Base):
    """An online channel's system (WeChat account back end, 甬企码 mini program, PC platform …).

    The bearer token is shown once when the client is created (``qifu api-client add``); only its digest
    is kept. A client may submit only on its own channel(s), so a case's recorded channel (FH-2) is the
    channel that really brought it.
    """

    __tablename__ = "api_client"
    __table_args__ = (UniqueConstraint("name", name="uq_api_client_name"),
                      UniqueConstraint("token_hash", name="uq_api_client_token_hash"))

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64))
    channels: Mapped[str] = mapped_column(String(1000))  # comma-separated channel codes
    process_key: Mapped[str] = mapped_column(String(200), default="fenghua_one_place")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def channel_list(self) -> list[str]:
        return [c.strip() for c in self.channels.split(",") if c.strip()]


class IdempotencyRecord(Base):
    """The first response to one ``Idempotency-Key`` of one client, replayed for every retry.

    The row is written in the transaction that starts the case, so a case and its record exist together or
    not at all; the unique constraint is what stops two concurrent retries from both creating a case.
    ``status`` is always ``done`` (``pending`` was used by an earlier design that stored the row first).
    The enterprise's tracking token is not stored in plain: ``sealed_token`` is the token encrypted with
    AES-256-GCM under a key derived from the client's bearer token (which the database does not hold), with
    the idempotency key as associated data.
    """

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("client_id", "key", name="uq_idempotency_client_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("api_client.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="done")
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_json: Mapped[str | None] = mapped_column(Text)
    sealed_token: Mapped[str | None] = mapped_column(String(200))
    business_key: Mapped[str | None] = mapped_column(String(200), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RateLimitHit(Base):
    """One counted attempt in a rate-limit bucket (e.g. public submissions of one IP digest)."""

    __tablename__ = "rate_limit_hit"
    __table_args__ = (Index("ix_rate_limit_hit_bucket_at", "bucket", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bucket: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
