"""Migration of running cases to a newer version (#12 item 5), on SQLite and PostgreSQL.

A case moves only where SpiffWorkflow's diff of the two specs says it is safe for the case's state
(engine/migration.py); the move is one step (history action ``migrated``) that brings the timer and task rows
along; the dry run changes nothing; ``qifu migrate … --dry-run`` prints the same per-case verdicts.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from engine import history
from engine.errors import ConflictError, NotFoundError, QifuError
from engine.migration import check
from engine.models import Deployment, Event, HumanTask, Instance, Timer
from engine.repository import specs_for
from engine.state import load_state
from tests.conftest import diagram

XML = diagram("migration.bpmn").decode()
RECEIVED = "2026-09-30T10:00:00+08:00"
TWO = "${working_days_after(received, 2)}"
THREE = "${working_days_after(received, 3)}"


def version2(*edits: tuple[str, str]) -> bytes:
    text = XML
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text.encode()


def start(engine, key: str = "M-1", *, to_review: bool = True) -> int:
    iid = engine.runtime.start("migration", key, {"received": RECEIVED}).instance_id
    if to_review:
        complete(engine, iid, "intake", {"note": "已登记"})
    return iid


def open_row(engine, iid: int, spec_id: str) -> HumanTask:
    with engine.session() as s:
        row = s.scalar(select(HumanTask).where(HumanTask.instance_id == iid, HumanTask.spec_id == spec_id))
        assert row is not None, f"no open {spec_id}"
        s.expunge(row)
        return row


def complete(engine, iid: int, spec_id: str, data: dict | None = None, actor: str = "clerk") -> None:
    engine.runtime.complete_task(open_row(engine, iid, spec_id).task_guid, data or {}, actor=actor)


def waiting_timers(engine, iid: int) -> list[Timer]:
    with engine.session() as s:
        rows = list(s.scalars(select(Timer).where(Timer.instance_id == iid, Timer.status == "waiting")))
        s.expunge_all()
        return rows


def version_of(engine, iid: int) -> int:
    with engine.session() as s:
        return s.get(Deployment, s.get(Instance, iid).deployment_id).version


def events(engine, iid: int) -> list[Event]:
    with engine.session() as s:
        rows = list(s.scalars(select(Event).where(Event.instance_id == iid).order_by(Event.seq)))
        s.expunge_all()
        return rows


def verdict(engine, key: str = "M-1", to: int = 2) -> object:
    plan = engine.runtime.migration_plan("migration", 1, to)
    return next(c for c in plan.cases if c.business_key == key)


@pytest.mark.req("BP-4")
def test_a_waiting_case_moves_with_its_timer_its_open_task_and_a_history_event(engine) -> None:
    engine.deploy(XML.encode())
    iid = start(engine)
    row = open_row(engine, iid, "review")
    engine.tasks.claim(row.task_guid, "alice")
    [timer] = waiting_timers(engine, iid)
    engine.deploy(version2((TWO, THREE), ('name="批准"', 'name="批准（领导）"')), actor="designer")
    before = events(engine, iid)

    plan = engine.runtime.migration_plan("migration", 1, 2)
    assert (plan.total, plan.from_version, plan.to_version) == (1, 1, 2)
    [case] = plan.cases
    assert case.migrate and case.reasons == () and "review_due" in case.changes[0]
    assert [e.hash for e in events(engine, iid)] == [e.hash for e in before]  # the dry run changed nothing
    assert version_of(engine, iid) == 1

    result = engine.runtime.migrate(iid, "migration", 1, 2, actor="designer")
    assert version_of(engine, iid) == 2 and result.status == "running"
    [moved] = waiting_timers(engine, iid)
    assert moved.task_guid == timer.task_guid and moved.id == timer.id  # the same row, moved
    assert engine.calendar.snapshot().working_days_between(timer.due_at.date(), moved.due_at.date()) == 1
    kept = open_row(engine, iid, "review")
    assert (kept.task_guid, kept.assignee) == (row.task_guid, "alice") and kept.due_at == moved.due_at
    event = events(engine, iid)[-1]
    payload = json.loads(event.payload)
    assert (event.action, event.actor, len(events(engine, iid))) == ("migrated", "designer", len(before) + 1)
    assert payload["details"]["from"]["version"] == 1 and payload["details"]["to"]["version"] == 2
    assert payload["details"]["timers_recomputed"][0]["element"] == "review_due"
    assert "流程迁移：版本 1 → 版本 2" in payload["notes"][0]["note"]
    assert engine.history.verify([iid]) == []
    # the case goes on on version 2: the next task opens under its new name
    complete(engine, iid, "review", {"opinion": "同意"}, actor="alice")
    assert open_row(engine, iid, "approve").name == "批准（领导）"
    with engine.session() as s:
        assert s.scalar(select(func.count()).select_from(Instance).where(Instance.deployment_id != s.scalar(
            select(Deployment.id).where(Deployment.version == 2)))) == 0


def test_what_follows_the_open_task_is_predicted_again_from_the_new_version(engine) -> None:
    engine.deploy(XML.encode())
    iid = start(engine)
    inserted = ('<bpmn:userTask id="check" name="复核" camunda:candidateGroups="clerks"><bpmn:incoming>f3'
                '</bpmn:incoming><bpmn:outgoing>f3b</bpmn:outgoing></bpmn:userTask>'
                '<bpmn:sequenceFlow id="f3b" sourceRef="check" targetRef="approve" />')
    engine.deploy(version2(('<bpmn:sequenceFlow id="f3" sourceRef="review" targetRef="approve" />',
                            '<bpmn:sequenceFlow id="f3" sourceRef="review" targetRef="check" />' + inserted),
                           ("<bpmn:incoming>f3</bpmn:incoming>\n      <bpmn:outgoing>f4</bpmn:outgoing>",
                            "<bpmn:incoming>f3b</bpmn:incoming>\n      <bpmn:outgoing>f4</bpmn:outgoing>")))
    assert verdict(engine).migrate, verdict(engine).reasons
    engine.runtime.migrate(iid, "migration", 1, 2, actor="designer")
    complete(engine, iid, "review")
    complete(engine, iid, "check")  # the task inserted after the open one
    complete(engine, iid, "approve")
    with engine.session() as s:
        assert s.get(Instance, iid).status == "completed"


@pytest.mark.parametrize("edit, reason", [
    (('name="登记"', 'name="登记（新）"'), "已办理过的 「登记」(intake) 在新版本中有改动（名称）"),
    (('name="审核"', 'name="复审"'), "正在办理的任务 「审核」(review) 的名称有改动"),
    (('camunda:candidateGroups="clerks">\n      <bpmn:extensionElements>\n        <camunda:formData>\n          '
      '<camunda:formField id="opinion"', 'camunda:candidateGroups="leaders">\n      <bpmn:extensionElements>\n'
      '        <camunda:formData>\n          <camunda:formField id="opinion"'), "候选组/办理人/期限等属性有改动"),
    (('cancelActivity="false" attachedToRef="review"', 'cancelActivity="true" attachedToRef="review"'),
     "「2个工作日」(review_due) 的是否中断有改动"),
    (("<bpmn:timeDate>" + TWO + "</bpmn:timeDate>", "<bpmn:timeDuration>P2D</bpmn:timeDuration>"),
     "「2个工作日」(review_due) 的事件定义有改动"),
])
def test_a_case_cannot_move_where_its_state_would_not_follow(engine, edit, reason) -> None:
    engine.deploy(XML.encode())
    iid = start(engine)
    engine.deploy(version2(edit))
    case = verdict(engine)
    assert not case.migrate and any(reason in r for r in case.reasons), case.reasons
    with pytest.raises(ConflictError) as refused:
        engine.runtime.migrate(iid, "migration", 1, 2, actor="designer")
    assert "不能迁移" in refused.value.message and version_of(engine, iid) == 1
    assert events(engine, iid)[-1].action != "migrated"


def test_the_open_task_removed_from_the_new_version(engine) -> None:
    engine.deploy(XML.encode())
    waiting = start(engine, "M-1")
    fresh = start(engine, "M-2", to_review=False)  # still at intake: review is only predicted there
    engine.deploy(version2(('id="review" name="审核"', 'id="review2" name="审核"'), ('targetRef="review"', 'targetRef="review2"'),
                           ('sourceRef="review"', 'sourceRef="review2"'), ('attachedToRef="review"', 'attachedToRef="review2"'),
                           ('bpmnElement="review"', 'bpmnElement="review2"')))
    assert "案件当前停留的 「审核」(review) 在新版本中已删除" in verdict(engine, "M-1").reasons
    assert verdict(engine, "M-2").migrate
    engine.runtime.migrate(fresh, "migration", 1, 2, actor="designer")
    complete(engine, fresh, "intake")
    assert open_row(engine, fresh, "review2").name == "审核" and version_of(engine, waiting) == 1


def test_the_history_counts_what_compaction_dropped_from_the_tree(engine) -> None:
    """A completed element missing from the saved task tree still blocks a change to it (from the history)."""
    engine.deploy(XML.encode())
    iid = start(engine)
    new = engine.deploy(version2(('name="登记"', 'name="登记（新）"'))).deployment
    with engine.session() as s:
        ran = {ref.element for e in history.events_for(s, iid) for ref in e.completed}
        state = s.get(Instance, iid).state_json
        old = s.scalar(select(Deployment).where(Deployment.version == 1))
        workflow = load_state(state, *specs_for(s, old.id, old.content_hash))
        new_spec, new_subs = specs_for(s, new.id, new.content_hash)
        for task in [t for t in workflow.tasks.values() if t.task_spec.name == "intake"]:
            workflow._remove_task(task.id) if task.parent is not None else None
        assert "intake" in ran
        assert check(s, workflow, new_spec, new_subs, set())[0] == []  # the tree alone no longer shows it
        reasons = check(s, workflow, new_spec, new_subs, ran)[0]
    assert any("intake" in r for r in reasons)


def test_refusals_name_what_is_wrong(engine) -> None:
    engine.deploy(XML.encode())
    iid = start(engine)
    engine.deploy(version2((TWO, THREE)))
    for args, words in ((("migration", 1, 1), "相同"), (("migration", 1, 7), "没有版本 7"),
                        (("nonesuch", 1, 2), "没有版本 1")):
        with pytest.raises(QifuError) as refused:
            engine.runtime.migration_plan(*args)
        assert words in refused.value.message
    engine.runtime.migrate(iid, "migration", 1, 2, actor="designer")
    with pytest.raises(ConflictError, match="不在 migration 版本 1 上"):
        engine.runtime.migrate(iid, "migration", 1, 2, actor="designer")
    with pytest.raises(NotFoundError):
        engine.runtime.migrate(999, "migration", 1, 2, actor="designer")
    outcome = engine.runtime.migrate_many([iid, iid], "migration", 1, 2, actor="designer")
    assert len(outcome) == 1 and outcome[0][1] is None and isinstance(outcome[0][2], ConflictError)


def test_a_case_that_moved_on_since_the_dry_run_is_checked_again(engine) -> None:
    engine.deploy(XML.encode())
    iid = start(engine)
    engine.deploy(version2(('name="审核"', 'name="审核"'), ('name="批准"', 'name="批准（新）"')))
    assert verdict(engine).migrate
    complete(engine, iid, "review")  # now at approve, whose name changed: no longer safe
    with pytest.raises(ConflictError, match="批准"):
        engine.runtime.migrate(iid, "migration", 1, 2, actor="designer")
    assert version_of(engine, iid) == 1


def test_qifu_migrate_dry_run_and_run_print_json(engine, db_url) -> None:
    from web.cli import main

    engine.deploy(XML.encode())
    safe = start(engine, "M-1")
    start(engine, "M-2", to_review=False)
    engine.deploy(version2(('label="登记意见"', 'label="登记说明"'), (TWO, THREE)))  # intake's form: M-1 ran it
    runner = CliRunner()
    env = {"QIFU_DATABASE_URL": db_url}
    dry = runner.invoke(main, ["--json", "migrate", "migration", "--from", "1", "--to", "2", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    plan = json.loads(dry.stdout)
    assert plan["dry_run"] and plan["total"] == 2
    verdicts = {c["business_key"]: c for c in plan["cases"]}
    assert verdicts["M-1"]["migrate"] is False and "intake" in verdicts["M-1"]["reasons"][0]
    assert verdicts["M-2"]["migrate"] is True  # still at intake: an open task's form may change
    assert version_of(engine, safe) == 1
    human = runner.invoke(main, ["migrate", "migration", "--from", "1", "--to", "2", "--dry-run"], env=env)
    assert "不能迁移 M-1" in human.output and "可迁移  M-2" in human.output
    run = runner.invoke(main, ["--json", "migrate", "migration", "--from", "1", "--to", "2", "--actor", "ops"], env=env)
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["migrated"] == ["M-2"] and version_of(engine, safe) == 1
    named = runner.invoke(main, ["--json", "migrate", "migration", "--from", "1", "--to", "2", "--case", "M-1"], env=env)
    assert named.exit_code == 2 and json.loads(named.stdout)["refused"][0]["business_key"] == "M-1"
    unknown = runner.invoke(main, ["--json", "migrate", "migration", "--from", "1", "--to", "2", "--case", "X"], env=env)
    assert unknown.exit_code == 2 and "不是 migration 版本 1 上运行中的案件" in json.loads(unknown.stdout)["message"]
