"""One object that hands out the engine's services over one database, as Camunda's ProcessEngine does.

    engine = ProcessEngine(settings=read(EngineSettings))      # or ProcessEngine(url, clock, services)
    engine.repository.deploy(open("x.bpmn", "rb").read(), filename="x.bpmn")
    engine.runtime.start("x", "CASE-1", {...})
    engine.tasks.query(TaskQuery(groups=("clerks",)))
    engine.runtime.complete_task(task_guid, {...}, actor="alice")
    engine.management.run_due_timers()
    engine.history.replay(instance_id, step=3)

| service | Camunda's | what it does |
|---|---|---|
| ``repository`` | RepositoryService | validate and store diagrams, versions, specs |
| ``runtime`` | RuntimeService | start a case, complete a task, read instances |
| ``tasks`` | TaskService | find open tasks (paged), claim, unclaim, reassign |
| ``management`` | ManagementService | fire due timers, move and recompute deadlines |
| ``history`` | HistoryService | a case's steps, replay, verify the chains |
| ``calendar`` | (business calendar) | working days: read, show, correct, load a year |

Every service reads in read-only transactions and writes through the one step path (:mod:`engine.step`).
Tests pass a :class:`~engine.clock.FixedClock` and move it to make timers fall due.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from . import db
from .calendar import CalendarService, CalendarSettings
from .clock import Clock, SystemClock
from .history import HistoryKeys, HistoryService
from .management import ManagementService
from .repository import DeployResult, RepositoryService
from .runtime import RuntimeService
from .scripting import ScriptLimits
from .services import ServiceRegistry
from .settings import EngineSettings, read
from .step import StepObserver, Stepper
from .tasks import TaskService
from .workflow_cache import WorkflowCache

DEFAULT_KEY_FILE = "var/history_keys"  # QIFU_VAR_DIR's default; web.engine.build_engine follows QIFU_VAR_DIR


class ProcessEngine:
    def __init__(self, url: str | None = None, clock: Clock | None = None,
                 services: ServiceRegistry | None = None, *, settings: EngineSettings | None = None) -> None:
        settings = settings or read(EngineSettings)
        if url is not None:
            settings = EngineSettings(**{**settings.__dict__, "database_url": url})
        self.settings = settings
        self.url = settings.database_url
        self.clock = clock or SystemClock()
        self.services = services if services is not None else ServiceRegistry()
        self.db = db.Database(self.url, synchronous=settings.sqlite_synchronous,
                              wal_autocheckpoint=settings.sqlite_wal_autocheckpoint)
        calendar_settings = CalendarSettings.from_settings(settings)
        self.stepper = Stepper(self.db, self.clock, self.services, limits=ScriptLimits.from_settings(settings),
                               calendar_settings=calendar_settings,
                               cache=WorkflowCache(settings.workflow_cache_size, settings.verify_steps))
        self.repository = RepositoryService(self.db, self.services, max_bytes=settings.max_diagram_bytes,
                                            clock=self.clock)
        self.runtime = RuntimeService(self.db, self.stepper)
        self.tasks = TaskService(self.db, self.stepper)
        self.management = ManagementService(self.db, self.stepper)
        # the history keys are read once, here: every step signs with them without touching the file
        self.history = HistoryService(self.db, HistoryKeys.load(settings.history_key_file or DEFAULT_KEY_FILE))
        self.calendar = CalendarService(self.db, calendar_settings, self.clock)

    @property
    def cache(self) -> WorkflowCache:
        """The live workflows this process keeps between steps (see :mod:`engine.workflow_cache`)."""
        return self.stepper.cache

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A write transaction for the application's own tables (committed on success)."""
        with self.db.write() as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction that no writer waits for (see :mod:`engine.db`)."""
        with self.db.read() as session:
            yield session

    def observe_steps(self, observer: StepObserver) -> None:
        """Call ``observer(process_key, action, seconds)`` after every committed step (metrics hook)."""
        self.stepper.observers.append(observer)

    def deploy(self, content: bytes, *, filename: str | None = None, actor: str | None = None) -> DeployResult:
        """Shorthand for ``repository.deploy``."""
        return self.repository.deploy(content, filename=filename, actor=actor)

    def __repr__(self) -> str:
        return f"<ProcessEngine {make_url(self.url).render_as_string(hide_password=True)}>"
