"""``qifu deploy`` never answers with a traceback (issue #10, item 5).

Each construct that used to crash the deploy, or deployed and could then never run, is refused through the
CLI with exit status 2 and, with ``--json``, exactly one JSON document naming the element and the reason;
nothing is stored. Message events are the construct that deploys: its spec serialises and restores, and a
message thrown in a case reaches the events of that case waiting for it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select

from engine import repository
from engine.errors import DeploymentError
from engine.models import Deployment, HumanTask, Instance
from web.cli import main

HERE = Path(__file__).parent
MESSAGES = HERE / "diagrams" / "messages.bpmn"


def process(body: str, definitions: str = "") -> str:
    """A one-task process ``p``: start → ``body`` (an element with id ``t``) → end."""
    return f'''<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Defs_p" targetNamespace="http://qifu.test/p">
  {definitions}
  <bpmn:process id="p" name="拒绝测试" isExecutable="true">
    <bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    {body}
    <bpmn:endEvent id="e"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="t" />
    <bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="e" />
  </bpmn:process>
</bpmn:definitions>
'''


FLOWS = "<bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>"


def user_task(*fields: str) -> str:
    return (f'<bpmn:userTask id="t" name="填写" camunda:candidateGroups="g"><bpmn:extensionElements>'
            f'<camunda:formData>{"".join(fields)}</camunda:formData></bpmn:extensionElements>{FLOWS}'
            f'</bpmn:userTask>')


MESSAGE = '<bpmn:message id="m" name="补正通知" />'
REFUSED: dict[str, tuple[str, str, list[str]]] = {
    # name: (diagram, element, words the message must contain)
    "business rule without decisionRef": (
        process(f'<bpmn:businessRuleTask id="t" name="规则">{FLOWS}</bpmn:businessRuleTask>'),
        "t", ["业务规则任务", "DMN"]),
    "business rule with decisionRef": (
        process(f'<bpmn:businessRuleTask id="t" name="规则" camunda:decisionRef="d1">{FLOWS}'
                f'</bpmn:businessRuleTask>'),
        "t", ["业务规则任务"]),
    "textarea field": (
        process(user_task('<camunda:formField id="memo" label="备注" type="textarea" />')),
        "t", ["memo", "备注", "textarea", "不受支持"]),
    "custom field type": (
        process(user_task('<camunda:formField id="amount" type="currency" />')),
        "t", ["amount", "currency"]),
    "unknown constraint": (
        process(user_task('<camunda:formField id="code" type="string"><camunda:validation>'
                          '<camunda:constraint name="pattern" config="[0-9]+" /></camunda:validation>'
                          '</camunda:formField>')),
        "t", ["code", "pattern"]),
    "maxlength not a number": (
        process(user_task('<camunda:formField id="code" type="string"><camunda:validation>'
                          '<camunda:constraint name="maxlength" config="many" /></camunda:validation>'
                          '</camunda:formField>')),
        "t", ["code", "maxlength", "many"]),
    "min above max": (
        process(user_task('<camunda:formField id="days" type="long"><camunda:validation>'
                          '<camunda:constraint name="min" config="10" /><camunda:constraint name="max" config="1" />'
                          '</camunda:validation></camunda:formField>')),
        "t", ["days", "最小值"]),
    "enum without options": (
        process(user_task('<camunda:formField id="level" label="级别" type="enum" />')),
        "t", ["level", "可选项"]),
    "field defined twice": (
        process(user_task('<camunda:formField id="a" type="string" />', '<camunda:formField id="a" type="long" />')),
        "t", ["a", "重复"]),
    "messageRef to no message": (
        process(f'<bpmn:receiveTask id="t" name="接收" messageRef="nope">{FLOWS}</bpmn:receiveTask>'),
        "t", ["nope", "不存在"]),
    "messageRef breaking an XPath": (
        process(f'<bpmn:intermediateCatchEvent id="t" name="等待">{FLOWS}'
                f'<bpmn:messageEventDefinition id="t_def" messageRef="m&quot;]" /></bpmn:intermediateCatchEvent>',
                MESSAGE),
        "t_def", ["模式", "messageRef"]),
    "message without a name": (
        process(f'<bpmn:sendTask id="t" name="发送" messageRef="m">{FLOWS}</bpmn:sendTask>',
                '<bpmn:message id="m" />'),
        "t", ["没有名称"]),
    "message event without messageRef": (
        process(f'<bpmn:intermediateThrowEvent id="t" name="通知">{FLOWS}'
                f'<bpmn:messageEventDefinition id="t_def" /></bpmn:intermediateThrowEvent>'),
        "t", ["必须", "no messageRef"]),
    "send task written as a Camunda service": (
        process(f'<bpmn:sendTask id="t" name="发送" camunda:type="external" camunda:topic="notify">{FLOWS}'
                f'</bpmn:sendTask>'),
        "t", ["发送任务", "服务任务"]),
    "send task with a Camunda expression and no message": (
        process(f'<bpmn:sendTask id="t" name="发送" camunda:expression="${{mailer.send()}}">{FLOWS}'
                f'</bpmn:sendTask>'),
        "t", ["camunda:expression", "服务任务"]),
    "hostile message payload": (
        process(f'<bpmn:sendTask id="t" name="发送" messageRef="m" camunda:expression="().__class__">{FLOWS}'
                f'</bpmn:sendTask>', MESSAGE),
        "t (发送) camunda:expression", ["表达式"]),
    "hostile correlation key": (
        process(f'<bpmn:receiveTask id="t" name="接收" messageRef="m">{FLOWS}</bpmn:receiveTask>',
                MESSAGE + '<bpmn:correlationProperty id="cp" name="案件号">'
                '<bpmn:correlationPropertyRetrievalExpression messageRef="m">'
                '<bpmn:messagePath>__import__("os")</bpmn:messagePath>'
                '</bpmn:correlationPropertyRetrievalExpression></bpmn:correlationProperty>'),
        "t (接收) 关联属性 cp", ["表达式"]),
    "unknown errorRef": (
        process(f'<bpmn:task id="t" name="办理">{FLOWS}</bpmn:task>'
                '<bpmn:boundaryEvent id="b" attachedToRef="t"><bpmn:errorEventDefinition id="b_def" errorRef="nope" />'
                '</bpmn:boundaryEvent>'),
        "b", ["errorRef", "nope"]),
    "boundary event without a definition it supports": (
        process(f'<bpmn:task id="t" name="办理">{FLOWS}</bpmn:task>'
                '<bpmn:boundaryEvent id="b" attachedToRef="t"><bpmn:compensateEventDefinition id="b_def" />'
                '</bpmn:boundaryEvent>'),
        "b", ["事件定义"]),
    "process id too long for the table": (
        process("<bpmn:task id='t' />").replace('id="p"', f'id="{"p" * 201}"'),
        "p" * 80, ["过长"]),
}


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "deploy.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


def run_deploy(url: str, *paths: Path):  # click's Result
    return CliRunner().invoke(main, ["--json", "deploy", *map(str, paths)], env={"QIFU_DATABASE_URL": url})


def stored(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(Deployment.__table__))
    finally:
        engine.dispose()


def refusal(result) -> dict:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    document = json.loads(result.stdout)  # one document: a second one would be "Extra data"
    assert set(document) >= {"error", "message", "element"}, document
    assert "Traceback" not in result.output
    return document


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_through_the_cli_with_element_and_reason(name: str, sqlite_url: str, tmp_path: Path) -> None:
    diagram, element, words = REFUSED[name]
    path = tmp_path / "bad.bpmn"
    path.write_text(diagram, encoding="utf-8")
    document = refusal(run_deploy(sqlite_url, path))
    assert document["error"] == "invalid_diagram"
    assert document["element"] == element, document
    for word in words:
        assert word in document["message"], (word, document)
    assert stored(sqlite_url) == 0


def test_a_refused_file_stores_none_of_the_files_before_it(sqlite_url: str, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.bpmn", tmp_path / "bad.bpmn"
    good.write_text(process(f'<bpmn:task id="t" name="办理">{FLOWS}</bpmn:task>'), encoding="utf-8")
    bad.write_text(REFUSED["textarea field"][0], encoding="utf-8")
    document = refusal(run_deploy(sqlite_url, good, bad))
    assert document["message"].startswith("bad.bpmn: ")
    assert stored(sqlite_url) == 0
    result = run_deploy(sqlite_url, good)
    assert result.exit_code == 0 and json.loads(result.stdout)[0]["version"] == 1


def test_a_chain_deeper_than_the_parser_recursion_is_refused_in_words(sqlite_url: str, tmp_path: Path) -> None:
    """SpiffWorkflow's parser recurses once per element along the flow; its RecursionError said nothing."""
    n = 1500  # t → c1 → … → c1500 → e
    chain = "".join(f'<bpmn:task id="c{i}" /><bpmn:sequenceFlow id="c{i}_in" sourceRef="{f"c{i - 1}" if i > 1 else "t"}"'
                    f' targetRef="c{i}" />' for i in range(1, n + 1))
    body = (f'<bpmn:task id="t"><bpmn:incoming>f1</bpmn:incoming></bpmn:task>{chain}'
            f'<bpmn:sequenceFlow id="c_out" sourceRef="c{n}" targetRef="e" />')
    diagram = process(body).replace('<bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="e" />', "")
    path = tmp_path / "long.bpmn"
    path.write_text(diagram, encoding="utf-8")
    document = refusal(run_deploy(sqlite_url, path))
    assert "过多" in document["message"] and "RecursionError" not in document["message"], document
    assert document["element"]


def test_a_device_is_read_only_up_to_the_limit(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QIFU_MAX_DIAGRAM_BYTES", "4096")
    document = refusal(run_deploy(sqlite_url, Path("/dev/zero")))
    assert document["element"] == "/dev/zero" and "过大" in document["message"]


def test_an_unforeseen_parser_failure_names_the_step_and_the_process(sqlite_url: str, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The last line of defence: an exception nobody checked for still becomes a refusal."""
    def broken(self, *args, **kwargs):
        raise LookupError("something SpiffWorkflow did not expect")

    monkeypatch.setattr(repository.QifuParser, "get_spec", broken)
    path = tmp_path / "ok.bpmn"
    path.write_text(process(f'<bpmn:task id="t" name="办理">{FLOWS}</bpmn:task>'), encoding="utf-8")
    document = refusal(run_deploy(sqlite_url, path))
    assert document["element"] == "p"
    assert "解析流程" in document["message"] and "LookupError" in document["message"]
    assert document["details"]["step"].startswith("解析流程")
    assert stored(sqlite_url) == 0


def test_an_unserialisable_spec_names_the_element(sqlite_url: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A spec the serializer cannot write (as message events were) is refused, naming the task."""
    registry = repository._serializer.registry
    convert = registry.convert

    def without_user_tasks(obj):
        if type(obj).__name__ == "UserTask":
            return object()  # what a class without a converter gives: json.dumps fails on it
        return convert(obj)

    monkeypatch.setattr(registry, "convert", without_user_tasks)
    path = tmp_path / "form.bpmn"
    path.write_text(process(user_task('<camunda:formField id="memo" type="string" />')), encoding="utf-8")
    document = refusal(run_deploy(sqlite_url, path))
    assert document["element"] == "t (填写)"
    assert "序列化" in document["message"]
    assert stored(sqlite_url) == 0


# --- message events deploy, serialise, and run within a case ------------------------------------------
@pytest.mark.parametrize("tag", ["sendTask", "receiveTask"])
def test_send_and_receive_tasks_deploy_through_the_cli(tag: str, sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / f"{tag}.bpmn"
    path.write_text(process(f'<bpmn:{tag} id="t" name="消息" messageRef="m">{FLOWS}</bpmn:{tag}>', MESSAGE),
                    encoding="utf-8")
    result = run_deploy(sqlite_url, path)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["process"] == "p"


def test_message_spec_restores_with_the_same_definitions() -> None:
    parsed = repository.parse_diagram(MESSAGES.read_bytes(), MESSAGES.name)
    spec, _subs = repository._restore_specs(repository.spec_to_json(parsed))
    for task_id in ("wait_done", "send_done", "reminded", "throw_remind"):
        before, after = parsed.spec.task_specs[task_id].event_definition, spec.task_specs[task_id].event_definition
        assert type(after) is type(before) and after == before
        assert (after.name, after.expression) == (before.name, before.expression)


def test_a_message_sent_in_a_case_reaches_its_receive_task(engine) -> None:
    """The join after the receive task fires only if 办结通知 arrived; the throw without a payload works."""
    engine.deploy(MESSAGES.read_bytes(), filename=MESSAGES.name)
    started = engine.runtime.start("messages", "M-1", {})
    assert started.status == "running"
    with engine.session() as s:
        guid = s.scalar(select(HumanTask.task_guid).where(HumanTask.spec_id == "work"))
        assert s.get(Instance, started.instance_id).status == "running"
    done = engine.runtime.complete_task(guid, {"answer": "已补正"})
    assert done.status == "completed"


def test_parse_diagram_raises_only_deployment_errors_for_these_cases() -> None:
    for name, (diagram, _element, _words) in REFUSED.items():
        with pytest.raises(DeploymentError):
            repository.parse_diagram(diagram.encode(), f"{name}.bpmn")
