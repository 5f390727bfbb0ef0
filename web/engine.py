"""The application's engine: built from the settings with the domain's service-task handlers registered.

``create_app`` and the ``qifu`` command both build it here, the same way, so a setting means the same thing
to the web server, the timer executor and the command line.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import handlers
from engine.clock import Clock
from engine.process_engine import ProcessEngine
from engine.services import ServiceRegistry

from .settings import Settings


def build_engine(settings: Settings | None = None, *, clock: Clock | None = None) -> ProcessEngine:
    """A :class:`ProcessEngine` over ``settings.engine`` with every handler of :mod:`handlers` registered."""
    from .labels import notice_choice_label

    settings = settings or Settings.from_env()
    registry = ServiceRegistry()
    built: list[ProcessEngine] = []  # the lookup needs the engine, which needs the registry first
    handlers.register(registry, choice_label=lambda key, name, value: notice_choice_label(built[0], key, name, value),
                      revisit_key_file=settings.revisit_key_file or str(Path(settings.var_dir) / "revisit_key"))
    engine_settings = settings.engine
    if not engine_settings.history_key_file:  # the history keys live with the app's other files
        engine_settings = dataclasses.replace(engine_settings,
                                              history_key_file=str(Path(settings.var_dir) / "history_keys"))
    built.append(ProcessEngine(clock=clock, services=registry, settings=engine_settings))
    return built[0]
