"""The service-task registry: handlers are plain functions registered by topic name.

A diagram names a handler with ``camunda:topic``; deploying a diagram whose topic nobody registered is
refused. Handlers run inside the step's transaction: if one raises, the whole step rolls back.

A handler receives a :class:`ServiceCall` and returns a dict (merged into the task data, or mapped through
the task's ``camunda:outputParameter`` entries).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session


@dataclass
class ServiceCall:
    topic: str
    params: dict[str, Any]
    data: dict[str, Any]          # a copy of the task data, read-only by convention
    session: Session              # the step's transaction: handlers may write their own tables
    instance_id: int
    business_key: str
    task_id: str
    element_id: str
    actor: str | None
    now: datetime
    calendar: Any                 # engine.calendar.WorkdayCalendar
    process_key: str = ""         # the diagram's process id
    notes: list[dict[str, Any]] = field(default_factory=list)  # recorded into the step's history event


Handler = Callable[[ServiceCall], dict[str, Any] | None]
JobRequeue = Callable[[Session, int, datetime], None]
"""Put a queued job that gave up (an incident) back in its queue: ``(session, job id, now)``; raise if it cannot."""


@dataclass(frozen=True)
class Registration:
    topic: str
    handler: Handler
    description: str


@dataclass(frozen=True)
class JobQueue:
    """A queue of jobs the application runs outside steps (the outbox): how to retry one after an incident."""

    job_type: str
    requeue: JobRequeue
    description: str


class ServiceRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, Registration] = {}
        self._queues: dict[str, JobQueue] = {}

    def register_job_queue(self, job_type: str, requeue: JobRequeue, description: str = "") -> None:
        """Name a job queue whose give-ups become incidents, and how a retry puts a job back."""
        self._queues[job_type] = JobQueue(job_type, requeue, description)

    def job_queue(self, job_type: str) -> JobQueue | None:
        return self._queues.get(job_type)

    def register(self, topic: str, handler: Handler, description: str = "") -> None:
        self._handlers[topic] = Registration(topic, handler, description)

    def handler(self, topic: str, description: str = "") -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`register`."""

        def wrap(fn: Handler) -> Handler:
            doc = (fn.__doc__ or "").strip()
            self.register(topic, fn, description or (doc.splitlines()[0] if doc else ""))
            return fn

        return wrap

    def unregister(self, topic: str) -> None:
        self._handlers.pop(topic, None)

    def get(self, topic: str) -> Registration | None:
        return self._handlers.get(topic)

    def topics(self) -> list[str]:
        return sorted(self._handlers)
