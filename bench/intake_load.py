"""Intake under load: 200 public submissions and 200 API submissions at once, against the real server.

    .venv/bin/python -m bench.intake_load                      # SQLite (a temporary file)
    .venv/bin/python -m bench.intake_load --pg postgresql+psycopg://postgres@127.0.0.1:55432/postgres

It starts what production runs — ``qifu init``, ``qifu deploy processes/*.bpmn``, then ``qifu serve``
(gunicorn, ``--workers`` × ``--threads``, with its timer executor) on a fresh database: a temporary SQLite
file, or with ``--pg ADMIN_URL`` a database ``qifu_load_<random>`` created on that server and dropped
afterwards — and talks to it over HTTP only, the way enterprises and channel systems do:

- **Public form** (``/submit``): each visitor GETs the form first (its own cookie, its own CSRF token), then
  all POSTs go out at the same instant. The server runs as behind the README's reverse proxy
  (``QIFU_TRUSTED_PROXIES=1``; the load sends ``X-Forwarded-For``), so visitors have addresses of their own:
  the public rate limit (``QIFU_PUBLIC_RATE_LIMIT``, default 5 per address per hour) holds per address.
  ``--public`` submissions come from ``public / limit`` addresses at the limit, and ``--over-limit`` more
  from some of the same addresses must be refused with the documented 429 — exactly that many.
- **Intake API** (``POST /api/v1/cases``, a client made with ``qifu --json api-client add``): every submission
  has its own ``Idempotency-Key``; a client retries with the same key on a connection error, a timeout or a
  5xx (up to 5 attempts, backing off), and every ``--duplicate-every``-th submission is sent twice at once
  with the same key, as a client does that gave up waiting and retried while the first was still running.
  Both answers must name the same case (201 and a 200 replay).

Checks (exit status 1 if any fails): no answer other than 303 (public accepted), 429 (public over the
limit), 201/200 (API); no 5xx in the server's JSON request log; one ``enterprise_case`` per accepted
public submission and per idempotency key, none for a refused one; every API answer for a key names the
same case. Then it prints p50/p95/max of the POSTs of each kind beside the target: **p95 ≤ 3 s** with all
submissions arriving in the same second (the time a person waits after pressing 提交 before the page
answers; a burst of 400 at once is far beyond a service centre's peak hour). Timings are printed, never
asserted: ``tests/production/test_intake_load.py`` runs a smaller burst and checks only correctness.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET_P95 = 3.0
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')
BUSINESS_KEY = re.compile(r'id="business-key">([A-Z]{2}-\d{8}-\d{4,})<')


# --- the real server -----------------------------------------------------------------------------------
def qifu(env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 300) -> Any:
    """Run one ``qifu --json`` command; its JSON document (a refusal raises with the document)."""
    done = subprocess.run([sys.executable, "-c", "from web.cli import main; main()", "--json", *args], env=env,
                          cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=timeout)
    document = json.loads(done.stdout) if done.stdout.strip() else {}
    if done.returncode != 0:
        raise RuntimeError(f"qifu {' '.join(args)} exited {done.returncode}: {document} {done.stderr[-2000:]}")
    return document


def server_env(database_url: str, var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment a deployment gives every ``qifu`` process (one database, one secret, one var dir)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QIFU_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update({"QIFU_DATABASE_URL": database_url, "QIFU_VAR_DIR": str(var_dir), "PYTHONUNBUFFERED": "1",
                "QIFU_SECRET_KEY": secrets.token_hex(32)})
    env.update(extra)
    return env


def prepare_database(env: dict[str, str]) -> None:
    """``qifu init`` and ``qifu deploy processes/*.bpmn``: what an administrator runs once."""
    qifu(env, "init")
    qifu(env, "deploy", *sorted(str(p) for p in (ROOT / "processes").glob("*.bpmn")))


class Process:
    """A ``qifu`` command running in the background; stdout and stderr are collected line by line."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.args = args
        self.proc = subprocess.Popen([sys.executable, "-c", "from web.cli import main; main()", *args], env=env,
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(s, t), daemon=True)
                         for s, t in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in iter(stream.readline, ""):
            into.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 90) -> re.Match[str]:
        """The first stdout line matching ``pattern`` (fails if the process ends or time runs out)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.out):
                found = regex.search(line)
                if found:
                    return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"qifu {' '.join(self.args)}: no line /{pattern}/ (exit {self.proc.poll()})\n"
                           + "\n".join(self.out[-20:] + self.err[-40:]))

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as systemd or a container runtime stops it; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for reader in self._readers:
            reader.join(5)
        return self.proc.returncode

    def json_lines(self) -> list[dict[str, Any]]:
        """The JSON objects the process wrote to stderr (the request log)."""
        out = []
        for line in list(self.err):
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out


class QifuServer(Process):
    """``qifu serve`` on a free port; ``url`` once gunicorn listens."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        super().__init__(env, "serve", "--port", "0", *args)
        found = self.wait_for(r"Qifu 运行于 (http://[^/ ]+)/")
        self.url = found.group(1)
        host, _, port = self.url.removeprefix("http://").rpartition(":")
        self.host, self.port = host, int(port)

    def get(self, path: str, headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, dict, bytes]:
        return request(self.host, self.port, "GET", path, headers=headers, timeout=timeout)


@contextmanager
def database(pg_admin_url: str | None, workdir: Path) -> Iterator[str]:
    """A fresh database URL: a SQLite file under ``workdir``, or a new PostgreSQL database (dropped after)."""
    if not pg_admin_url:
        yield f"sqlite:///{workdir / 'qifu.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"qifu_load_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- HTTP, the way a browser and a channel system talk to it ------------------------------------------
def request(host: str, port: int, method: str, path: str, *, body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
    """One request on a connection of its own (status, headers with lower-case names, body)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


@dataclass
class Visitor:
    """One person at the public form: an address, a cookie jar, a CSRF token."""

    address: str
    cookies: dict[str, str] = field(default_factory=dict)
    token: str = ""

    def headers(self, **extra: str) -> dict[str, str]:
        out = {"X-Forwarded-For": self.address, **extra}
        if self.cookies:
            out["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return out

    def keep(self, headers: dict[str, str]) -> None:
        raw = headers.get("set-cookie")
        if raw:
            cookie: SimpleCookie = SimpleCookie()
            cookie.load(raw)
            self.cookies.update({k: m.value for k, m in cookie.items()})


@dataclass
class Outcome:
    kind: str  # public | api
    ident: str  # the description marker (public) or the idempotency key (api)
    status: int
    seconds: float
    business_key: str | None = None
    attempts: int = 1
    error: str | None = None


def _public_fields(run: str, i: int) -> dict[str, str]:
    return {"enterprise_name": f"宁波负载测试企业{i:04d}有限公司", "contact_name": "王先生",
            "contact_phone": f"139{i:08d}"[:11], "category": "factor_finance",
            "description": f"负载测试 {run} 公众 #{i}：企业融资需求咨询"}


def _api_body(run: str, i: int) -> dict[str, str]:
    return {"enterprise_name": f"奉化接口负载企业{i:04d}有限公司", "contact_name": "李女士",
            "contact_phone": f"138{i:08d}"[:11], "category": "factor_finance",
            "description": f"负载测试 {run} 接口 #{i}：用地审批进度咨询"}


def open_form(host: str, port: int, visitor: Visitor) -> None:
    status, headers, body = request(host, port, "GET", "/submit", headers=visitor.headers())
    if status != 200:
        raise RuntimeError(f"GET /submit: {status}")
    visitor.keep(headers)
    found = CSRF.search(body.decode("utf-8"))
    if not found:
        raise RuntimeError("GET /submit: no csrf_token in the form")
    visitor.token = found.group(1) or found.group(2)


def submit_public(host: str, port: int, visitor: Visitor, fields: dict[str, str], marker: str) -> Outcome:
    form = urllib.parse.urlencode({**fields, "csrf_token": visitor.token}).encode()
    started = time.perf_counter()
    try:
        status, headers, _ = request(host, port, "POST", "/submit", body=form, headers=visitor.headers(
            **{"Content-Type": "application/x-www-form-urlencoded"}))
    except OSError as exc:
        return Outcome("public", marker, 0, time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - started
    outcome = Outcome("public", marker, status, seconds)
    if status == 303:
        visitor.keep(headers)
        done_status, _, page = request(host, port, "GET", "/submit/done", headers=visitor.headers())
        found = BUSINESS_KEY.search(page.decode("utf-8"))
        outcome.business_key = found.group(1) if found else None
        if done_status != 200 or not found:
            outcome.error = f"/submit/done answered {done_status} without a case number"
    elif status != 429:
        outcome.error = f"POST /submit answered {status}"
    return outcome


def submit_api(host: str, port: int, token: str, key: str, body: dict[str, str], *, attempts: int = 5,
               timeout: float = 60) -> Outcome:
    """A channel system's submission: retried with the same key on a lost connection, a timeout or a 5xx."""
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key, "Content-Type": "application/json"}
    last = Outcome("api", key, 0, 0.0)
    for attempt in range(1, attempts + 1):
        started = time.perf_counter()
        try:
            status, _, raw = request(host, port, "POST", "/api/v1/cases", body=data, headers=headers, timeout=timeout)
        except OSError as exc:  # includes timeouts: retry with the same key
            last = Outcome("api", key, 0, time.perf_counter() - started, attempts=attempt,
                           error=f"{type(exc).__name__}: {exc}")
            time.sleep(0.2 * 2 ** attempt)
            continue
        seconds = time.perf_counter() - started
        answer = json.loads(raw or b"{}")
        last = Outcome("api", key, status, seconds, answer.get("business_key"), attempt)
        if status >= 500:
            last.error = f"POST /api/v1/cases answered {status}: {answer}"
            time.sleep(0.2 * 2 ** attempt)
            continue
        if status not in (200, 201):
            last.error = f"POST /api/v1/cases answered {status}: {answer}"
        return last
    return last


# --- one run -------------------------------------------------------------------------------------------
@dataclass
class Report:
    database: str
    outcomes: list[Outcome]
    problems: list[str]
    server_errors: list[dict[str, Any]]

    def latencies(self, kind: str) -> list[float]:
        return sorted(o.seconds for o in self.outcomes if o.kind == kind and o.status)


def p95(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]


def _burst(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Run every job at the same instant, one thread each (a barrier releases them together)."""
    barrier = threading.Barrier(len(jobs))

    def go(job: Callable[[], Any]) -> Any:
        barrier.wait()
        return job()

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(go, jobs))


def run(*, public: int = 200, api: int = 200, over_limit: int = 10, duplicate_every: int = 4, workers: int = 2,
        threads: int = 4, pg_admin_url: str | None = None, rate_limit: int = 5,
        say: Callable[[str], None] = print) -> Report:
    """Start the server on a fresh database, send the burst, check it; the report (timings and problems)."""
    if public % rate_limit:
        raise ValueError(f"--public must be a multiple of the rate limit ({rate_limit})")
    workdir = Path(tempfile.mkdtemp(prefix="qifu-load-"))
    run_id = uuid.uuid4().hex[:8]
    try:
        with database(pg_admin_url, workdir) as url:
            env = server_env(url, workdir / "var", QIFU_TRUSTED_PROXIES="1",
                             QIFU_PUBLIC_RATE_LIMIT=str(rate_limit))
            prepare_database(env)
            client = qifu(env, "api-client", "add", f"load-{run_id}", "--channel", "wechat_account")
            server = QifuServer(env, "--workers", str(workers), "--threads", str(threads))
            try:
                say(f"server {server.url}: {workers} workers × {threads} threads on "
                    f"{'PostgreSQL' if pg_admin_url else 'SQLite'}")
                report = _load(server, client["token"], run_id, public, api, over_limit, duplicate_every,
                               rate_limit, url)
            finally:
                code = server.stop()
                if code != 0:
                    raise RuntimeError(f"qifu serve exited {code}\n" + "\n".join(server.err[-40:]))
            report.server_errors = [line for line in server.json_lines()
                                    if isinstance(line.get("status"), int) and line["status"] >= 500]
            report.problems += [f"server answered {e['status']} to {e.get('method')} {e.get('path')}"
                                for e in report.server_errors]
            return report
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _load(server: QifuServer, token: str, run_id: str, public: int, api: int, over_limit: int,
          duplicate_every: int, rate_limit: int, url: str) -> Report:
    host, port = server.host, server.port
    addresses = [f"10.{11 + a // 250}.{a % 250}.7" for a in range(public // rate_limit)]
    visitors = [Visitor(addresses[i // rate_limit]) for i in range(public)]
    visitors += [Visitor(addresses[i % len(addresses)]) for i in range(over_limit)]
    with ThreadPoolExecutor(max_workers=16) as pool:  # every visitor opens the form first (cookie, token)
        list(pool.map(lambda v: open_form(host, port, v), visitors))
    jobs: list[Callable[[], Outcome]] = [
        (lambda v=v, i=i: submit_public(host, port, v, _public_fields(run_id, i), f"公众 #{i}"))
        for i, v in enumerate(visitors)]
    keys = [f"load-{run_id}-{i}" for i in range(api)]
    for i, key in enumerate(keys):
        jobs.append(lambda key=key, i=i: submit_api(host, port, token, key, _api_body(run_id, i)))
        if duplicate_every and i % duplicate_every == 0:  # the same key again, at once: a retry in flight
            jobs.append(lambda key=key, i=i: submit_api(host, port, token, key, _api_body(run_id, i)))
    outcomes = _burst(jobs)
    report = Report("PostgreSQL" if url.startswith("postgresql") else "SQLite", outcomes, [], [])
    report.problems += [f"{o.kind} {o.ident}: {o.error}" for o in outcomes if o.error]
    _check_public(report, visitors, addresses, rate_limit, over_limit)
    _check_api(report, keys)
    _check_database(report, url, run_id, public, api)
    return report


def _check_public(report: Report, visitors: list[Visitor], addresses: list[str], limit: int, over: int) -> None:
    public = [o for o in report.outcomes if o.kind == "public"]
    accepted = Counter(v.address for v, o in zip(visitors, public, strict=True) if o.status == 303)
    refused = sum(1 for o in public if o.status == 429)
    wrong = {a: n for a in addresses if (n := accepted.get(a, 0)) != limit}
    if wrong:
        report.problems.append(f"public: addresses accepted other than {limit} submissions: {wrong}")
    if refused != over:
        report.problems.append(f"public: {refused} refused with 429, expected exactly {over}")


def _check_api(report: Report, keys: list[str]) -> None:
    by_key: dict[str, set[str | None]] = {k: set() for k in keys}
    for o in report.outcomes:
        if o.kind == "api" and o.status in (200, 201):
            by_key[o.ident].add(o.business_key)
    split = {k: v for k, v in by_key.items() if len(v) != 1}
    if split:
        report.problems.append(f"api: keys answered with no case or with different cases: {dict(list(split.items())[:5])}")


def _check_database(report: Report, url: str, run_id: str, public: int, api: int) -> None:
    """Count the cases the burst made, straight from the ledger: one per accepted submission, no more."""
    from sqlalchemy import create_engine, func, select

    from handlers.models import EnterpriseCase

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(EnterpriseCase.description, func.count()).where(
                EnterpriseCase.description.like(f"负载测试 {run_id} %")).group_by(EnterpriseCase.description)).all()
    finally:
        engine.dispose()
    twice = [d for d, n in rows if n > 1]
    if twice:
        report.problems.append(f"duplicate cases: {twice[:5]}")
    made_public = sum(1 for d, _ in rows if " 公众 #" in d)
    made_api = sum(1 for d, _ in rows if " 接口 #" in d)
    keys = {o.business_key for o in report.outcomes if o.business_key}
    if made_public != public:
        report.problems.append(f"public: {made_public} cases in the ledger, {public} submissions accepted")
    if made_api != api:
        report.problems.append(f"api: {made_api} cases in the ledger for {api} idempotency keys")
    if len(keys) != public + api:
        report.problems.append(f"{len(keys)} distinct case numbers answered for {public + api} accepted submissions")


def print_report(report: Report, say: Callable[[str], None] = print) -> None:
    say(f"\n{report.database}: {len(report.outcomes)} POSTs "
        f"({Counter((o.kind, o.status) for o in report.outcomes)})")
    for kind in ("public", "api"):
        values = report.latencies(kind)
        if not values:
            continue
        p = p95(values)
        verdict = "PASS" if p <= TARGET_P95 else "BELOW"
        say(f"  {kind:6} POST p50 {statistics.median(values) * 1000:7.0f} ms  p95 {p * 1000:7.0f} ms  "
            f"max {values[-1] * 1000:7.0f} ms   target p95 ≤ {TARGET_P95 * 1000:.0f} ms  "
            f"ratio {p / TARGET_P95:4.2f}  {verdict}")
    answered = [o.seconds for o in report.outcomes if o.status]
    if answered:  # the burst arrives at once: p95 is about 0.95 x POSTs / throughput, so print what bounds it
        say(f"  throughput {len(answered) / max(answered):.0f} POSTs/s (all {len(answered)} answered within "
            f"{max(answered):.1f} s); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, shared "
            f"with the load generator")
    retried = sum(1 for o in report.outcomes if o.attempts > 1)
    say(f"  api submissions that needed a retry: {retried}")
    say("  checks: " + ("all passed (no unexpected status, no duplicate, none lost)" if not report.problems
                        else f"{len(report.problems)} FAILED"))
    for problem in report.problems[:20]:
        say(f"    - {problem}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.intake_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--public", type=int, default=200, help="public submissions (a multiple of the limit)")
    parser.add_argument("--api", type=int, default=200, help="API submissions (idempotency keys)")
    parser.add_argument("--over-limit", type=int, default=10, help="public submissions beyond the rate limit")
    parser.add_argument("--duplicate-every", type=int, default=4, help="every N-th API key is also sent twice")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--pg", metavar="ADMIN_URL", help="PostgreSQL server to create the database on")
    args = parser.parse_args(argv)
    print(f"intake load: {args.public} public + {args.over_limit} over the limit, {args.api} API "
          f"(every {args.duplicate_every}th twice at once), all at the same instant")
    report = run(public=args.public, api=args.api, over_limit=args.over_limit,
                 duplicate_every=args.duplicate_every, workers=args.workers, threads=args.threads,
                 pg_admin_url=args.pg)
    print_report(report)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
