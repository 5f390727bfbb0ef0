"""The Flask app factory. Blueprints per area are added here as the UI grows."""

from __future__ import annotations

from typing import Any

from flask import Flask

from engine.process_engine import ProcessEngine


def create_app(engine: ProcessEngine | None = None, config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(config or {})
    if engine is None:
        import handlers  # noqa: F401 - registers service-task handlers

        engine = ProcessEngine(app.config.get("DATABASE_URL"))
    app.extensions["qifu_engine"] = engine

    from .views import status

    app.register_blueprint(status.bp)
    return app
