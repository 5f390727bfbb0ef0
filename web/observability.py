"""Observability: one JSON log line per request, Prometheus metrics, and what ``/metrics`` shows.

:func:`init_app` (called by ``create_app``) gives every request an id — the caller's ``X-Request-Id`` when it
is sane (printable, ≤ 128 characters of ``A-Za-z0-9._:-``), else a fresh one — echoed in the response header,
and writes one JSON object per line to the ``qifu.request`` logger (stderr unless the host application
configured it): ``ts, level, msg, request_id, method, path, endpoint, status, duration_ms, user, case``.
The path is logged without its query string, and a private tracking link's token is replaced by ``…``: logs
travel further than the database, and the token is the enterprise's only secret. Client addresses are not
logged (personal data; the rate limits store only a digest either).

Metrics (prometheus-client). Counters and histograms live in the process that observes them; under
``qifu serve`` every process writes to one ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` merges them, so it
answers the same whichever worker a scrape reaches. Figures that the database knows (open cases, tasks,
timers, incidents, timer lateness) are read when scraped (:mod:`web.read.metrics`), never kept as gauges
that would drift between processes.

- ``qifu_http_request_duration_seconds{endpoint,method,status}`` — per Flask endpoint (``unmatched`` for
  paths no route knows, so a scanner cannot grow the label set).
- ``qifu_step_duration_seconds{process,action}`` — every committed engine step (``ProcessEngine.observe_steps``),
  in web workers and in ``qifu serve``'s timer executor.
- from the database: ``qifu_open_cases``, ``qifu_open_tasks``, ``qifu_overdue_tasks`` by process;
  ``qifu_timers_waiting``, ``qifu_timers_overdue`` (waiting although due), ``qifu_timers_failed``,
  ``qifu_incidents_open``; ``qifu_timer_lateness_seconds`` (a gauge histogram of ``fired_at − due_at`` over the
  timers due in the last 10 minutes).

``/metrics`` answers requests from the machine itself that came through no proxy, or requests with
``Authorization: Bearer <QIFU_METRICS_TOKEN>``; anything else gets 403/401 JSON (see :mod:`web.views.health`).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
_log = logging.getLogger("qifu.request")


# --- metrics of this process ---------------------------------------------------------------------------
def multiprocess_mode() -> bool:
    """Whether this process writes its metrics to the shared directory (``qifu serve`` sets it)."""
    return bool(os.environ.get(MULTIPROC_ENV))


class ProcessMetrics:
    """The counters and histograms this process observes (one set per process: prometheus-client's rule)."""

    def __init__(self) -> None:
        # In multiprocess mode values go to files and are collected from there; registering them as well
        # would count them twice.
        self.registry = CollectorRegistry(auto_describe=True)
        target = None if multiprocess_mode() else self.registry
        self.http = Histogram("qifu_http_request_duration_seconds", "HTTP requests by Flask endpoint",
                              ("endpoint", "method", "status"), buckets=HTTP_BUCKETS, registry=target)
        self.steps = Histogram("qifu_step_duration_seconds", "committed engine steps (start to commit)",
                               ("process", "action"), buckets=STEP_BUCKETS, registry=target)

    def observe_step(self, process_key: str, action: str, seconds: float) -> None:
        self.steps.labels(process_key or "?", action).observe(seconds)


_metrics: ProcessMetrics | None = None
_metrics_lock = threading.Lock()
_instrumented: weakref.WeakSet[Any] = weakref.WeakSet()


def process_metrics() -> ProcessMetrics:
    """This process's metrics, made on first use (after the fork, for a gunicorn worker)."""
    global _metrics
    with _metrics_lock:
        if _metrics is None:
            _metrics = ProcessMetrics()
        return _metrics


def instrument_engine(engine: Any) -> None:
    """Count every committed step of ``engine`` (once per engine, however many apps share it)."""
    if engine in _instrumented:
        return
    _instrumented.add(engine)
    engine.observe_steps(process_metrics().observe_step)


# --- what a scrape reads from the database -------------------------------------------------------------
class DatabaseCollector(Collector):
    """Figures computed at scrape time from the database (:func:`web.read.metrics.snapshot`)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Any]:
        from web.read.metrics import snapshot

        started = time.perf_counter()
        snap = snapshot(self.engine, self.engine.clock.now())
        by_process = sorted(snap.by_process.items())
        for name, doc, attr in (("qifu_open_cases", "running cases", "open_cases"),
                                ("qifu_open_tasks", "open user tasks", "open_tasks"),
                                ("qifu_overdue_tasks", "open user tasks past their due instant", "overdue_tasks")):
            family = GaugeMetricFamily(name, doc, labels=("process",))
            for key, counts in by_process:
                family.add_metric((key,), getattr(counts, attr))
            yield family
        yield GaugeMetricFamily("qifu_timers_waiting", "timers waiting to fire", value=snap.waiting_timers)
        yield GaugeMetricFamily("qifu_timers_overdue", "waiting timers already due (executors behind or stopped)",
                                value=snap.overdue_timers)
        yield GaugeMetricFamily("qifu_timers_failed", "timers whose firing failed its retries",
                                value=snap.failed_timers)
        yield GaugeMetricFamily("qifu_incidents_open", "open incidents (failed steps and timers)",
                                value=snap.incidents)
        yield _lateness_family(snap.lateness)
        yield GaugeMetricFamily("qifu_metrics_database_seconds", "time this scrape spent reading the database",
                                value=time.perf_counter() - started)


def _lateness_family(lateness: list[float]) -> GaugeHistogramMetricFamily:
    buckets: list[tuple[str, float]] = [(str(le), float(sum(1 for x in lateness if x <= le)))
                                        for le in LATENESS_BUCKETS]
    buckets.append(("+Inf", float(len(lateness))))
    return GaugeHistogramMetricFamily("qifu_timer_lateness_seconds",
                                      "fired_at - due_at of the timers due in the last 10 minutes",
                                      buckets=buckets, gsum_value=sum(lateness))


class _Registered(Collector):
    """The collectors of a registry, as one collector of another registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Any]:
        yield from self.registry.collect()


def render_metrics(engine: Any) -> Response:
    """The Prometheus text of this process (or of every process, in multiprocess mode) plus the database's."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_mode():
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Registered(process_metrics().registry))
    registry.register(DatabaseCollector(engine))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def metrics_allowed(token: str | None) -> tuple[bool, int]:
    """(allowed, status if not): the right bearer token, or loopback without a proxy in between."""
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if token and scheme.lower() == "bearer" and given.strip():
        return hmac.compare_digest(given.strip().encode(), token.encode()), 401
    proxied = "X-Forwarded-For" in request.headers or "Forwarded" in request.headers
    local = (request.remote_addr or "") in ("127.0.0.1", "::1") or (request.remote_addr or "").startswith("127.")
    if local and not proxied:
        return True, 200
    return False, 401 if token else 403


# --- request ids and the JSON request log --------------------------------------------------------------
class JsonFormatter(logging.Formatter):
    """One JSON object per line: the record's message as ``msg`` plus the fields passed in ``extra={"json": …}``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                               "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        out.update(getattr(record, "json", None) or {})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def _configure_logger() -> None:
    """JSON lines to stderr for ``qifu.request``, unless the host application set up a handler already."""
    if _log.level == logging.NOTSET:
        _log.setLevel(logging.INFO)
    if _log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    _log.addHandler(handler)
    _log.setLevel(logging.INFO)
    _log.propagate = False


def request_id() -> str:
    """This request's id (the sane ``X-Request-Id`` it came with, else a fresh one)."""
    rid = g.get("qifu_request_id")
    if rid is None:
        given = request.headers.get("X-Request-Id", "")
        rid = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        g.qifu_request_id = rid
    return rid


def note_case(business_key: str) -> None:
    """Tell the request log which case this request concerns (for views whose URL does not say it)."""
    g.qifu_case_key = business_key


def _logged_path() -> str:
    path = request.path
    token = (request.view_args or {}).get("token")
    if token:
        path = path.replace(str(token), "…")
    return path


def _case_key(response: Response, engine: Any) -> str | None:
    noted = g.get("qifu_case_key")
    if noted:
        return noted
    args = request.view_args or {}
    if args.get("business_key"):
        return str(args["business_key"])
    location = response.headers.get("Location", "")
    if request.method == "POST" and location.startswith("/api/v1/cases/"):
        return location.rsplit("/", 1)[-1]
    task_guid = args.get("task_guid")
    if task_guid and len(str(task_guid)) <= 64:
        try:
            task = engine.tasks.get(str(task_guid))
        except Exception:  # the log line must not fail the request (the database may be away)
            return None
        return task.business_key if task is not None else None
    return None


def _user() -> str | None:
    user = g.get("_login_user")  # what Flask-Login loaded for this request; never load it just to log it
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return getattr(user, "username", None) or user.get_id()


def init_app(app: Flask, engine: Any) -> None:
    """Request ids, the JSON request log and the HTTP/step metrics for ``app`` over ``engine``."""
    _configure_logger()
    metrics = process_metrics()
    instrument_engine(engine)

    @app.before_request
    def _start() -> None:
        g.qifu_started = time.perf_counter()
        request_id()

    @app.after_request
    def _finish(response: Response) -> Response:
        rid = request_id()
        response.headers["X-Request-Id"] = rid
        elapsed = time.perf_counter() - g.get("qifu_started", time.perf_counter())
        endpoint = request.endpoint or "unmatched"
        metrics.http.labels(endpoint, request.method, str(response.status_code)).observe(elapsed)
        fields = {"request_id": rid, "method": request.method, "path": _logged_path(), "endpoint": endpoint,
                  "status": response.status_code, "duration_ms": round(elapsed * 1000, 1), "user": _user(),
                  "case": _case_key(response, engine)}
        _log.info("request", extra={"json": fields})
        return response
