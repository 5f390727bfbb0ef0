"""The keyed history chain: every row carries an HMAC-SHA256 of its hash under a key kept outside the database,
so someone who can write the database but lacks the key cannot rewrite a chain unnoticed — recomputing the plain
SHA-256 hashes (which fools the plain chain) is detected and the first rewritten row named; keys rotate (new
events use the new key, old rows keep verifying with the old key); rows from before the keyed chain are sealed
once. Tampering is done as an intruder with database access would: raw SQL.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from engine import history
from engine.history import HistoryKeyError, HistoryKeys
from engine.models import Event, Instance
from engine.process_engine import ProcessEngine
from tests.conftest import diagram
from web.cli import main


def qifu(db_url: str, key_file: Path, *args: str):  # click.testing.Result
    return CliRunner().invoke(main, list(args), env={"QIFU_DATABASE_URL": db_url,
                                                     "QIFU_HISTORY_KEY_FILE": str(key_file)},
                              catch_exceptions=False)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "history_keys"


@pytest.fixture
def keyed(db_url: str, clock, services, key_file: Path, monkeypatch) -> ProcessEngine:
    """An engine signing with a key file of this test's own (created on first use)."""
    monkeypatch.setenv("QIFU_HISTORY_KEY_FILE", str(key_file))
    return ProcessEngine(db_url, clock, services)


def run_case(engine: ProcessEngine, clock, key: str) -> int:
    """A small case of 4 steps: start, a timer, two completions by two people."""
    from sqlalchemy import select as sel

    from engine.models import HumanTask

    engine.deploy(diagram("timer_nonint.bpmn"), filename="timer_nonint.bpmn")
    iid = engine.runtime.start("timer_nonint", key, {"applicant": "张三", "topic": "噪音扰民"}, actor="clerk").instance_id
    clock.advance(days=1, minutes=5)
    engine.management.run_due_timers()
    for element, actor, data in (("urge", "boss", {}), ("handle", "clerk", {"result": "已协调"})):
        with engine.session() as s:
            guid = s.scalar(sel(HumanTask.task_guid).where(HumanTask.instance_id == iid, HumanTask.spec_id == element))
        engine.runtime.complete_task(guid, data, actor=actor)
    return iid


def rows(engine: ProcessEngine, iid: int) -> list[Event]:
    with engine.session() as s:
        found = history.event_rows(s, iid)
        s.expunge_all()
        return found


def sql(engine: ProcessEngine, statement: str, **params) -> None:
    with engine.session() as s:
        s.execute(text(statement), params)


def rewrite_with_plain_hashes(engine: ProcessEngine, iid: int, from_seq: int, *, mac: str = "keep") -> None:
    """What an intruder without the key does: change a row's actor and recompute the plain SHA-256 chain from
    there on (and the case's head), so the plain chain verifies again. ``mac``: keep the old MACs, drop them
    (NULL) or make new ones with a key of the intruder's own."""
    own = HistoryKeys("", (history.HistoryKey("20260101-ffffff", "x", b"\x00" * 32),))
    prev = history.GENESIS
    for ev in rows(engine, iid):
        if ev.seq < from_seq:
            prev = ev.hash
            continue
        actor = "mallory" if ev.seq == from_seq else ev.actor
        digest = history.event_hash(prev, instance_id=iid, seq=ev.seq, at=ev.at, actor=actor, action=ev.action,
                                    task_guid=ev.task_guid, spec_id=ev.spec_id, payload=ev.payload)
        new_mac = {"keep": ev.mac, "drop": None, "own": own.sign(digest)}[mac]
        sql(engine, "UPDATE event SET actor = :a, prev_hash = :p, hash = :h, mac = :m WHERE id = :id",
            a=actor, p=prev, h=digest, m=new_mac, id=ev.id)
        prev = digest
    sql(engine, "UPDATE instance SET history_hash = :h WHERE id = :i", h=prev, i=iid)


# --- signing --------------------------------------------------------------------------------------------------
@pytest.mark.req("AU-1")
def test_every_row_is_signed_with_the_current_key(keyed, clock, key_file):
    iid = run_case(keyed, clock, "KC-1")
    ring = HistoryKeys.load(key_file, create=False)
    assert len(ring.keys) == 1 and stat.S_IMODE(key_file.stat().st_mode) == 0o400  # made on first use, read-only
    found = rows(keyed, iid)
    assert len(found) == 4
    for ev in found:
        key_id, _, value = ev.mac.partition(":")
        assert key_id == ring.current.id and len(value) == 64
        assert ring.check(ev.hash, ev.mac) is None
    assert keyed.history.verify() == []
    # the key is not in the database: no column, no row holds it
    secret = ring.current.secret.hex()
    with keyed.session() as s:
        dump = json.dumps([list(r) for r in s.execute(text("SELECT * FROM event")).all()], default=str)
    assert secret not in dump


@pytest.mark.req("AU-1")
def test_steps_sign_from_memory_without_reading_the_key_file(keyed, clock, key_file):
    keyed.deploy(diagram("timer_nonint.bpmn"), filename="timer_nonint.bpmn")
    os.chmod(key_file.parent, 0o700)
    key_file.rename(key_file.with_name("moved-away"))  # the file is gone: steps still sign, with the loaded key
    iid = keyed.runtime.start("timer_nonint", "KC-MEM", {"applicant": "李四"}, actor="clerk").instance_id
    assert [ev.mac.split(":")[0] for ev in rows(keyed, iid)] == [keyed.history.keys.current.id]
    assert keyed.history.verify([iid]) == []


# --- the attack a plain hash chain cannot see ---------------------------------------------------------------------
@pytest.mark.req("AU-1")
@pytest.mark.parametrize("mac", ["keep", "drop", "own"])
def test_a_chain_rewritten_with_recomputed_plain_hashes_is_detected(keyed, clock, db_url, key_file, mac):
    other = run_case(keyed, clock, "KC-OK")
    iid = run_case(keyed, clock, "KC-BAD")
    rewrite_with_plain_hashes(keyed, iid, from_seq=2, mac=mac)

    with keyed.session() as s:
        assert history.verify(s, keyed=False) == []  # the plain chain is fooled: every hash links
        problems = history.verify(s, keys=keyed.history.keys)
    assert problems and {p.instance_id for p in problems} == {iid}
    first = history.first_broken(problems)[iid]
    target = next(ev for ev in rows(keyed, iid) if ev.seq == 2)
    assert (first.event_id, first.seq) == (target.id, 2)
    assert first.kind == {"keep": "bad_mac", "drop": "unsigned", "own": "unknown_key"}[mac]

    result = qifu(db_url, key_file, "audit", "verify", "KC-BAD")
    assert result.exit_code == 1, result.output
    assert f"首个损坏行: 案件 KC-BAD (instance {iid}) event id={target.id} seq=2" in result.output
    report = json.loads(qifu(db_url, key_file, "--json", "audit", "verify").output)
    assert report["ok"] is False
    assert [(f["business_key"], f["event_id"], f["seq"]) for f in report["first_broken"]] == [("KC-BAD", target.id, 2)]
    assert qifu(db_url, key_file, "audit", "verify", "KC-OK").exit_code == 0
    assert other not in {p["instance_id"] for p in report["problems"]}


@pytest.mark.req("AU-1")
def test_a_forged_row_with_a_plain_hash_at_the_end_is_detected(keyed, clock, db_url, key_file):
    iid = run_case(keyed, clock, "KC-END")
    last = rows(keyed, iid)[-1]
    payload = history.canonical({"data_set": {"result": "伪造"}, "completed": [], "active": []})
    digest = history.event_hash(last.hash, instance_id=iid, seq=5, at=last.at, actor="mallory",
                                action="task_completed", task_guid=None, spec_id=None, payload=payload)
    with keyed.session() as s:  # the row and the head, consistent: only the missing MAC gives it away
        s.add(Event(instance_id=iid, seq=5, at=last.at, actor="mallory", action="task_completed", payload=payload,
                    prev_hash=last.hash, hash=digest, mac=None))
        s.execute(text("UPDATE instance SET history_seq = 5, history_hash = :h WHERE id = :i"), {"h": digest, "i": iid})
    with keyed.session() as s:
        assert history.verify(s, keyed=False) == []
        [problem] = history.verify(s)
    assert (problem.seq, problem.kind) == (5, "unsigned")
    assert qifu(db_url, key_file, "audit", "verify").exit_code == 1


# --- rotation -----------------------------------------------------------------------------------------------------
@pytest.mark.req("AU-1")
def test_rotation_signs_new_events_with_the_new_key_and_old_rows_keep_verifying(keyed, clock, db_url, key_file):
    iid = run_case(keyed, clock, "KC-ROT")
    old = HistoryKeys.load(key_file, create=False).current

    result = qifu(db_url, key_file, "--json", "audit", "rotate-key")
    assert result.exit_code == 0, result.output
    rotated = json.loads(result.output)
    assert rotated["previous"] == old.id and rotated["keys"] == [old.id, rotated["key_id"]]
    ring = HistoryKeys.load(key_file, create=False)
    assert [k.id for k in ring.keys] == [old.id, rotated["key_id"]] and ring.keys[0] == old  # the old key kept as is
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o400

    # a process started after the rotation signs with the new key; the old rows verify with the old one
    restarted = ProcessEngine(db_url, clock, keyed.services)
    second = run_case(restarted, clock, "KC-ROT-2")
    assert {ev.mac.split(":")[0] for ev in rows(restarted, second)} == {rotated["key_id"]}
    assert {ev.mac.split(":")[0] for ev in rows(restarted, iid)} == {old.id}
    assert restarted.history.verify() == []
    assert qifu(db_url, key_file, "audit", "verify").exit_code == 0
    listed = json.loads(qifu(db_url, key_file, "--json", "audit", "keys").output)["keys"]
    assert [(k["id"], k["signs"]) for k in listed] == [(old.id, False), (rotated["key_id"], True)]
    assert "secret" not in json.dumps(listed) and old.secret.hex() not in json.dumps(listed)

    # without the old key (a key file from elsewhere), the old rows no longer verify: keys must never be dropped
    only_new = HistoryKeys(str(key_file), ring.keys[1:])
    with restarted.session() as s:
        problems = history.verify(s, keys=only_new)
    assert problems and {p.kind for p in problems} == {"unknown_key"} and {p.instance_id for p in problems} == {iid}


@pytest.mark.req("AU-1")
def test_a_broken_key_file_stops_everything_with_a_clear_message(db_url, clock, services, tmp_path, monkeypatch):
    bad = tmp_path / "history_keys"
    bad.write_text("k1 2026-01-01 not-hex\n")
    monkeypatch.setenv("QIFU_HISTORY_KEY_FILE", str(bad))
    with pytest.raises(HistoryKeyError) as info:
        ProcessEngine(db_url, clock, services)
    assert "第 1 行" in info.value.message and str(bad) in info.value.message
    result = CliRunner().invoke(main, ["--json", "audit", "verify"], env={"QIFU_DATABASE_URL": db_url})
    assert result.exit_code == 2 and json.loads(result.output)["error"] == "history_key"
    with pytest.raises(HistoryKeyError):
        HistoryKeys.load(tmp_path / "missing", create=False)


# --- rows written before the keyed chain ---------------------------------------------------------------------
@pytest.mark.req("AU-1")
def test_seal_signs_the_rows_from_before_the_keyed_chain_once(keyed, clock, db_url, key_file):
    legacy = run_case(keyed, clock, "KC-OLD")
    forged = run_case(keyed, clock, "KC-OLD-BAD")
    sql(keyed, "UPDATE event SET mac = NULL")  # as after the upgrade: no row has a MAC yet
    sql(keyed, "UPDATE event SET actor = 'mallory' WHERE instance_id = :i AND seq = 3", i=forged)
    with keyed.session() as s:
        assert {p.kind for p in history.verify(s)} >= {"unsigned"}

    result = qifu(db_url, key_file, "--json", "audit", "seal")
    assert result.exit_code == 1  # one chain could not be sealed
    report = json.loads(result.output)
    assert (report["signed"], report["chains"]) == (4, 1)
    assert {p["instance_id"] for p in report["refused"]} == {forged}
    with keyed.session() as s:
        assert history.verify(s, [legacy]) == []
        assert {p.kind for p in history.verify(s, [forged])} == {"edited", "unsigned"}

    # once the keyed chain has started, a row stripped of its MAC later is tampering: seal leaves it alone
    late = run_case(keyed, clock, "KC-NEW")
    sql(keyed, "UPDATE event SET mac = NULL WHERE instance_id = :i", i=late)
    report = json.loads(qifu(db_url, key_file, "--json", "audit", "seal").output)
    assert report["signed"] == 0
    with keyed.session() as s:
        assert {p.kind for p in history.verify(s, [late])} == {"unsigned"}


@pytest.mark.req("AU-1")
def test_verify_checks_chains_in_batches_without_missing_any(keyed, clock, monkeypatch):
    ids = [run_case(keyed, clock, f"KC-B{i}") for i in range(5)]
    sql(keyed, "UPDATE event SET actor = 'mallory' WHERE instance_id = :i AND seq = 2", i=ids[3])
    monkeypatch.setattr(history, "VERIFY_BATCH", 2)  # 5 chains in 3 batches
    with keyed.session() as s:
        problems = history.verify(s)
        last = s.scalar(select(Instance.id).order_by(Instance.id.desc()))
    assert {p.instance_id for p in problems} == {ids[3]}
    batch = keyed.history.verify_batch(after=0, limit=2)
    assert (batch.checked, batch.done) == (2, False)
    batch = keyed.history.verify_batch(after=batch.last_id, limit=10)
    assert batch.done and batch.last_id == last and {p.instance_id for p in batch.problems} == {ids[3]}
