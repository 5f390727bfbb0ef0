"""Pages do not queue behind writers, and writers do not queue behind pages (issue #17), through the Flask test
client (SQLite, as every web test): the inbox and the ledger answer while another thread holds a write
transaction open, and a clerk's task completion goes through while another thread holds a slow read open.

Shown to fail by hand like tests/test_read_isolation.py: with the SQLite read engine opening its
transactions as the write engine does (``BEGIN IMMEDIATE``, no ``query_only``), both tests go red.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from engine.models import Event, HumanTask, Instance
from engine.process_engine import ProcessEngine
from handlers.models import EnterpriseCase, Outbox
from tests.held_transactions import Held, timed

from .conftest import csrf_token, login, open_task_guid, start_case

HOLD = 1.5   # seconds the other thread keeps its transaction open
LIMIT = 0.5  # seconds a request may take meanwhile (one that waits takes about HOLD)
ACCEPT = {"f_opinion": "同意受理，转代办", "f_days": "3", "f_simple": "y", "f_level": "hard",
          "f_visit_date": "2026-09-29"}


def _page(client: FlaskClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.get_data(as_text=True)


def test_inbox_and_ledger_answer_while_a_write_transaction_is_open(client: FlaskClient, other_client: FlaskClient,
                                                                   web_engine: ProcessEngine) -> None:
    case = start_case(web_engine)
    guid = open_task_guid(web_engine, case.business_key, "accept")
    login(client, "pa_super")        # 督办 of Pan'an: the whole region's inbox and the ledger
    login(other_client, "pa_accept")  # a clerk of PA01: the accept task is offered to them
    pages = [(client, "/?scope=all"), (client, "/supervision/ledger"), (other_client, "/")]
    for who, url in pages:  # first requests: templates compiled, sessions settled, before the hold
        assert case.business_key in _page(who, url)

    def open_write(ready: threading.Event) -> None:
        with web_engine.session() as session:
            session.add(Outbox(recipient="held", body="a write transaction held open", created_at=web_engine.clock.now()))
            session.flush()  # the insert has run: on SQLite the write lock is held from here to the commit
            ready.set()
            time.sleep(HOLD)

    took: dict[str, float] = {}
    with Held(open_write) as write:
        for who, url in pages:
            html, took[url] = timed(lambda who=who, url=url: _page(who, url))
            assert guid in html or case.business_key in html
        assert write.open(), "the pages answered only after the write had ended: they waited for it"
    assert all(t < LIMIT for t in took.values()), f"pages waited for the open write: {took}"
    with web_engine.read() as session:
        assert session.scalar(select(func.count()).select_from(Outbox).where(Outbox.recipient == "held")) == 1


def _counts(session: Any) -> tuple[int, ...]:
    return tuple(session.scalar(select(func.count()).select_from(t)) for t in (Instance, HumanTask, Event,
                                                                               EnterpriseCase))


def test_a_clerk_completes_a_task_while_a_slow_read_is_open(client: FlaskClient, web_engine: ProcessEngine) -> None:
    case = start_case(web_engine)
    guid = open_task_guid(web_engine, case.business_key, "accept")
    login(client, "pa_accept")
    token = csrf_token(client, f"/tasks/{guid}")  # the form as the clerk's browser has it, before the hold

    def slow_read(ready: threading.Event) -> tuple[int, ...]:
        with web_engine.read() as session:
            seen = _counts(session)  # rows read: on SQLite the read's snapshot is taken
            ready.set()
            time.sleep(HOLD)
            return seen

    with Held(slow_read) as read:
        response, took = timed(lambda: client.post(f"/tasks/{guid}", data={"csrf_token": token, **ACCEPT}))
        assert read.open(), "the completion went through only after the read had ended: it waited for it"
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    assert took < LIMIT, f"the completion waited {took:.2f} s for the open read"
    assert read.result[1] == 1  # the read saw the accept task, before the completion
    assert open_task_guid(web_engine, case.business_key, "handle")  # the case moved on to the next task
    with web_engine.read() as session:
        assert session.scalar(select(Event.actor).where(Event.action == "task_completed")) == "pa_accept"
