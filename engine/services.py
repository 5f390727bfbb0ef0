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


@dataclass(frozen=True)
class Registration:
    topic: str
    handler: Handler
    description: str


class ServiceRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, Registration] = {}

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
