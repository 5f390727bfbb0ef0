"""What the process pages show: process keys, their versions with case counts, one page of a migration dry run.

The counts come from :meth:`engine.repository.RepositoryService.versions` / ``overview`` (``GROUP BY`` in SQL,
never counted here); the dry run from :meth:`engine.runtime.RuntimeService.migration_plan`, one page at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from engine.migration import MigrationPlan
from engine.process_engine import ProcessEngine
from engine.repository import ProcessOverview, VersionInfo

PAGE_SIZE = 50


@dataclass(frozen=True)
class ProcessPage:
    process_key: str
    name: str | None
    versions: list[VersionInfo]

    @property
    def newest(self) -> VersionInfo:
        return self.versions[0]

    @property
    def running(self) -> int:
        return sum(v.running for v in self.versions)


@dataclass(frozen=True)
class PlanPage:
    plan: MigrationPlan
    page: int
    pages: int


def overview(engine: ProcessEngine) -> list[ProcessOverview]:
    return engine.repository.overview()


def process_page(engine: ProcessEngine, process_key: str) -> ProcessPage | None:
    versions = engine.repository.versions(process_key)
    if not versions:
        return None
    return ProcessPage(process_key, versions[0].name, versions)


def plan_page(engine: ProcessEngine, process_key: str, from_version: int, to_version: int, page: int) -> PlanPage:
    """One page of the dry run (each case's state is read and compared: the page bounds that work)."""
    plan = engine.runtime.migration_plan(process_key, from_version, to_version, offset=(page - 1) * PAGE_SIZE,
                                         limit=PAGE_SIZE)
    return PlanPage(plan, page, max(1, ceil(plan.total / PAGE_SIZE)))
