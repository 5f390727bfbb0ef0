"""One object that bundles the engine's services over one database, as Camunda's ProcessEngine does.

    engine = ProcessEngine()                 # QIFU_DATABASE_URL or var/qifu.db, system clock
    engine.deploy(open("x.bpmn", "rb").read(), filename="x.bpmn")
    engine.runtime.start("x", "CASE-1", {...})
    engine.runtime.complete_task(task_guid, {...}, actor="alice")
    engine.runtime.run_due_timers()

Tests pass a :class:`~engine.clock.FixedClock` and move it to make timers fall due.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

from . import db, repository
from .clock import Clock, SystemClock
from .runtime import Runtime
from .services import ServiceRegistry
from .services import registry as default_registry


class ProcessEngine:
    def __init__(self, url: str | None = None, clock: Clock | None = None,
                 services: ServiceRegistry | None = None) -> None:
        self.url = db.database_url(url)
        self.clock = clock or SystemClock()
        self.services = services or default_registry
        self.sessions = db.session_factory(self.url)
        self.runtime = Runtime(self.sessions, self.clock, self.services)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A write transaction: committed on success, rolled back on any exception."""
        with db.session_scope(self.url) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction that no writer waits for (see :mod:`engine.db`)."""
        with db.read_scope(self.url) as session:
            yield session

    def deploy(self, content: bytes, *, filename: str | None = None, actor: str | None = None) -> Any:
        with self.session() as session:
            result = repository.deploy(session, content, filename=filename, actor=actor, now=self.clock.now(),
                                       services=self.services)
            session.expunge(result.deployment)
            return result
