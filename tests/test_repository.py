"""Deployments: validation refuses bad diagrams with a message naming the element, and stores nothing."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from engine.errors import DeploymentError
from engine.models import Deployment
from tests.conftest import DIAGRAMS, diagram
from web.cli import main

SIMPLE = diagram("simple.bpmn").decode()
HEAD = SIMPLE.split("<bpmn:definitions", 1)[0]


def _count(engine) -> int:
    with engine.session() as s:
        return s.scalar(select(func.count(Deployment.id)))


def _refused(engine, content: str | bytes, *needles: str) -> DeploymentError:
    before = _count(engine)
    with pytest.raises(DeploymentError) as info:
        engine.deploy(content.encode() if isinstance(content, str) else content, filename="bad.bpmn")
    text = str(info.value)
    for needle in needles:
        assert needle in text, text
    assert _count(engine) == before, "a refused diagram must change nothing"
    return info.value


def _with(old: str, new: str) -> str:
    assert old in SIMPLE
    return SIMPLE.replace(old, new, 1)


@pytest.mark.req("BP-4")
def test_versions_and_idempotent_redeploy(engine) -> None:
    first = engine.deploy(diagram("simple.bpmn"), filename="simple.bpmn")
    again = engine.deploy(diagram("simple.bpmn"), filename="simple.bpmn")
    assert first.created and not again.created
    assert again.deployment.id == first.deployment.id
    edited = engine.deploy(_with('name="审核"', 'name="审核（新）"').encode(), filename="simple.bpmn")
    assert edited.created and edited.deployment.version == 2
    with engine.session() as s:
        rows = s.execute(select(Deployment.version, Deployment.content_hash)
                         .where(Deployment.process_key == "simple").order_by(Deployment.version)).all()
    assert [r[0] for r in rows] == [1, 2]
    assert rows[0][1] != rows[1][1] and all(re.fullmatch(r"[0-9a-f]{64}", r[1]) for r in rows)


@pytest.mark.req("BP-4")
def test_running_case_stays_on_its_version(engine) -> None:
    engine.deploy(diagram("simple.bpmn"))
    old = engine.runtime.start("simple", "V-1", {"received": "2026-09-30T10:00:00+08:00", "group": "g"})
    engine.deploy(_with('name="审核"', 'name="审核（新）"').encode())
    new = engine.runtime.start("simple", "V-2", {"received": "2026-09-30T10:00:00+08:00", "group": "g"})
    from engine.models import HumanTask, Instance
    with engine.session() as s:
        versions = {i.business_key: s.get(Deployment, i.deployment_id).version for i in s.scalars(select(Instance))}
        names = {t.instance_id: t.name for t in s.scalars(select(HumanTask).where(HumanTask.spec_id == "review"))}
    assert versions == {"V-1": 1, "V-2": 2}
    assert names[old.instance_id] == "审核" and names[new.instance_id] == "审核（新）"


def test_external_entity_refused(engine) -> None:
    xxe = HEAD.replace('<?xml version="1.0" encoding="UTF-8"?>',
                       '<?xml version="1.0" encoding="UTF-8"?>\n'
                       '<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>')
    xxe += "<bpmn:definitions" + SIMPLE.split("<bpmn:definitions", 1)[1].replace('name="审核"', 'name="&xxe;"')
    _refused(engine, xxe, "DTD")


def test_billion_laughs_refused(engine) -> None:
    ents = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    bomb = f'<?xml version="1.0"?>\n<!DOCTYPE lolz [{ents}]>\n<lolz>&lol9;</lolz>'
    _refused(engine, bomb, "DTD")


def test_oversized_file_refused(engine, monkeypatch) -> None:
    monkeypatch.setattr(engine.repository, "max_bytes", 1000)  # the setting QIFU_MAX_DIAGRAM_BYTES
    _refused(engine, SIMPLE, "文件过大")


@pytest.mark.parametrize("expression", [
    "__import__('os').system('echo pwned')",
    "().__class__.__subclasses__()",
    "approved.__class__",
    "open('/etc/passwd').read()",
])
def test_hostile_condition_refused(engine, expression: str) -> None:
    hostile = _with("${approved}", expression.replace("'", "&apos;"))
    error = _refused(engine, hostile)
    assert "f_yes" in str(error) or "gw" in str(error)


def test_hostile_expression_in_timer_and_parameter(engine) -> None:
    _refused(engine, _with("${working_days_after(received, 2)}", "${__import__('os').getcwd()}"), "remind")
    _refused(engine, _with("${comment}", "${comment.__class__}"), "notify")


def test_run_time_evaluation_goes_through_the_same_restrictions() -> None:
    """Even an expression that never passed deploy (say, a tampered stored spec) cannot run."""
    from engine.errors import ExpressionError
    from engine.scripting import RestrictedEnvironment

    env = RestrictedEnvironment({})
    assert env.evaluate("x + 1", {"x": 1}) == 2
    for hostile in ("open('/etc/passwd')", "().__class__.__subclasses__()", "getattr(x, 'real')",
                    "__import__('os')"):
        with pytest.raises(ExpressionError):
            env.evaluate(hostile, {"x": 1})
    with pytest.raises(ExpressionError):
        env.execute("import os", {})


def test_schema_error_refused(engine) -> None:
    _refused(engine, _with('<bpmn:exclusiveGateway id="gw"', '<bpmn:exclusiveGateway bogus="1" id="gw"'),
             "schema")


def test_duplicate_id_refused(engine) -> None:
    error = _refused(engine, _with('id="end_no"', 'id="end_ok"'), "duplicate id")
    assert "end_ok" in str(error)


def test_reserved_id_refused(engine) -> None:
    _refused(engine, SIMPLE.replace('"start"', '"Start"'), "Start")


def test_unknown_topic_refused(engine) -> None:
    error = _refused(engine, _with('camunda:topic="echo">\n      <bpmn:extensionElements>\n        '
                                   '<camunda:inputOutput>\n          <camunda:inputParameter name="what">${comment}',
                                   'camunda:topic="nonesuch">\n      <bpmn:extensionElements>\n        '
                                   '<camunda:inputOutput>\n          <camunda:inputParameter name="what">${comment}'),
                     "nonesuch")
    assert error.element and "notify" in error.element


@pytest.mark.parametrize("value", ["P3X", "R3/P1Q", "2026-13-45"])
def test_unparsable_timer_refused(engine, value: str) -> None:
    _refused(engine, _with("${working_days_after(received, 2)}", value), "remind")


def test_not_bpmn_and_not_xml_refused(engine) -> None:
    _refused(engine, "<html><body>hi</body></html>", "BPMN")
    _refused(engine, "not xml at all <", "XML")
    _refused(engine, b"\xff\xfe<\x00x\x00", "UTF-8")


def test_camunda_forms_topics_and_groups_are_parsed() -> None:
    from engine.forms import form_fields
    from engine.repository import parse_diagram
    from engine.services import ServiceRegistry

    services = ServiceRegistry()
    services.register("echo", lambda call: {})
    parsed = parse_diagram(diagram("simple.bpmn"), services=services)
    review = parsed.spec.task_specs["review"]
    fields = {f.id: f for f in form_fields(review)}
    assert fields["comment"].required and fields["comment"].constraints["maxlength"] == "50"
    assert fields["level"].options == [("low", "低"), ("high", "高")]
    assert review.extensions["candidateGroups"] == "${group}"
    notify = parsed.spec.task_specs["notify"]
    assert notify.topic == "echo" and notify.input_parameters == [["what", "comment"]]
    assert parsed.spec.task_specs["log_remind"].input_parameters == [["what", "'催办'"]]


# --- the CLI, as the acceptance list names it ----------------------------------------------------------
def _cli(db_url: str, *args: str):
    return CliRunner().invoke(main, list(args), env={"QIFU_DATABASE_URL": db_url}, catch_exceptions=False)


def test_cli_deploy_refusals_exit_nonzero_and_store_nothing(db_url, tmp_path) -> None:
    cases = {
        "xxe.bpmn": '<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<d>&x;</d>',
        "laughs.bpmn": '<?xml version="1.0"?>\n<!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">'
                       '<!ENTITY c "&b;&b;&b;&b;">]>\n<l>&c;</l>',
        "hostile.bpmn": _with("${approved}", "().__class__.__subclasses__()"),
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        result = _cli(db_url, "deploy", str(path))
        assert result.exit_code == 2, (name, result.output)
        assert "错误" in result.output and name in result.output
    json_result = _cli(db_url, "--json", "deploy", str(tmp_path / "hostile.bpmn"))
    assert json_result.exit_code == 2 and '"error": "invalid_diagram"' in json_result.output
    from engine.process_engine import ProcessEngine
    assert _count(ProcessEngine(db_url)) == 0


def test_cli_deploy_demo_diagram(db_url) -> None:
    demo = DIAGRAMS.parent.parent / "web" / "demo" / "general_request.bpmn"
    first = _cli(db_url, "deploy", str(demo))
    second = _cli(db_url, "deploy", str(demo))
    assert first.exit_code == 0 and "版本 1" in first.output
    assert second.exit_code == 0 and "内容未变" in second.output
