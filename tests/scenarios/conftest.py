"""Fixtures for scenario tests: an engine with the domain handlers and the reference data (units, stations,
categories, channels) loaded, and a way to deploy one of the seed diagrams from ``processes/``.

Scenario tests drive a case through the engine with the test clock (``clock`` fixture, 2026-09-30 10:00
Asia/Shanghai, the last working day before National Day) and move the clock to make deadlines fall due.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.clock import FixedClock
from engine.process_engine import ProcessEngine
from engine.services import ServiceRegistry

PROCESSES = Path(__file__).resolve().parents[2] / "processes"


@pytest.fixture
def domain_services() -> ServiceRegistry:
    """A registry of its own with every domain handler registered (as `import handlers` does globally)."""
    import handlers

    registry = ServiceRegistry()
    handlers.register(registry)
    return registry


@pytest.fixture
def case_engine(db_url: str, clock: FixedClock, domain_services: ServiceRegistry) -> ProcessEngine:
    """An engine over a fresh database holding the reference data; no diagram deployed yet."""
    from handlers import reference

    engine = ProcessEngine(db_url, clock, domain_services)
    with engine.session() as session:
        reference.load_reference(session)
    return engine


def deploy_process(engine: ProcessEngine, process_key: str) -> None:
    """Deploy ``processes/<process_key>.bpmn`` (the seed diagram, exactly as a designer would)."""
    path = PROCESSES / f"{process_key}.bpmn"
    engine.deploy(path.read_bytes(), filename=path.name)
