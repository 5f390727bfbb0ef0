"""The application's engine: built from the settings with the domain's service-task handlers registered.

``create_app`` and the ``qifu`` command both build it here, the same way, so a setting means the same thing
to the web server, the timer executor and the command line.
"""

from __future__ import annotations

import handlers
from engine.clock import Clock
from engine.process_engine import ProcessEngine
from engine.services import ServiceRegistry

from .settings import Settings


def build_engine(settings: Settings | None = None, *, clock: Clock | None = None) -> ProcessEngine:
    """A :class:`ProcessEngine` over ``settings.engine`` with every handler of :mod:`handlers` registered."""
    settings = settings or Settings.from_env()
    registry = ServiceRegistry()
    handlers.register(registry)
    return ProcessEngine(clock=clock, services=registry, settings=settings.engine)
