"""Fixtures for scenario tests: ``case_engine`` / ``domain_services`` (in tests/conftest.py: an engine with the
domain handlers and the reference data loaded) and a way to deploy one of the seed diagrams from ``processes/``.

Scenario tests drive a case through the engine with the test clock (``clock`` fixture, 2026-09-30 10:00
Asia/Shanghai, the last working day before National Day) and move the clock to make deadlines fall due.
"""

from __future__ import annotations

from pathlib import Path

from engine.process_engine import ProcessEngine

PROCESSES = Path(__file__).resolve().parents[2] / "processes"


def deploy_process(engine: ProcessEngine, process_key: str) -> None:
    """Deploy ``processes/<process_key>.bpmn`` (the seed diagram, exactly as a designer would)."""
    path = PROCESSES / f"{process_key}.bpmn"
    engine.deploy(path.read_bytes(), filename=path.name)
