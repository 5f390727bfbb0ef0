"""Element templates that keep a diagram working (#12 item 3, BP-2): where Camunda Modeler 5 finds them, one per
topic at least, every seed service task linked to a template whose parameters it has exactly (outputs
included), choices that offer every value the seeds use, and defaults that deploy and name only variables
the process has. tests/browser/test_modeler.py applies them in bpmn-js and runs the scenario tests on the
result."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from lxml import etree

import handlers

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "processes" / ".camunda" / "element-templates"  # Camunda Modeler 5: .camunda/ beside the diagrams
SEEDS = {"pan_an_station": ROOT / "processes" / "pan_an_station.bpmn",
         "fenghua_one_place": ROOT / "processes" / "fenghua_one_place.bpmn"}
BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
NS = {"bpmn": BPMN, "camunda": CAMUNDA}
PROCESS_OF = {"pan_an": "pan_an_station", "fenghua": "fenghua_one_place"}


def templates() -> dict[str, dict]:
    found: dict[str, dict] = {}
    for path in sorted(FOLDER.glob("*.json")):
        for template in json.loads(path.read_text(encoding="utf-8")):
            assert template["id"] not in found, f"{template['id']} twice"
            found[template["id"]] = template
    return found


def fixed(template: dict) -> dict[str, str]:
    return {p["binding"]["name"]: p["value"] for p in template["properties"]
            if p["type"] == "Hidden" and p["binding"]["type"] == "property"}


def inputs(template: dict) -> dict[str, dict]:
    return {p["binding"]["name"]: p for p in template["properties"] if p["binding"]["type"] == "camunda:inputParameter"}


def outputs(template: dict) -> dict[str, str]:
    """source → variable, as the template writes camunda:outputParameter."""
    return {p["binding"]["source"]: p["value"] for p in template["properties"]
            if p["binding"]["type"] == "camunda:outputParameter"}


def seed_tasks() -> list[tuple[str, etree._Element]]:
    return [(key, task) for key, path in SEEDS.items()
            for task in etree.parse(str(path)).getroot().iterfind(".//bpmn:serviceTask", NS)]


def params(task: etree._Element, tag: str) -> dict[str, str]:
    return {p.get("name"): (p.text or "").strip() for p in task.iterfind(f".//camunda:{tag}", NS)}


def process_of(template_id: str) -> str | None:
    part = template_id.split(".")[1]
    return PROCESS_OF.get(part)


def test_templates_are_where_camunda_modeler_finds_them_one_topic_each_registered() -> None:
    assert not (ROOT / "processes" / "element-templates").exists()
    found = templates()
    assert len(found) >= len(handlers.TOPICS)
    topics = set()
    for tid, t in found.items():
        assert tid.startswith("qifu.") and t["name"] and t["description"] and isinstance(t["version"], int)
        assert t["appliesTo"] == ["bpmn:ServiceTask"] and t["elementType"] == {"value": "bpmn:ServiceTask"}
        assert fixed(t)["camunda:type"] == "external" and fixed(t)["camunda:topic"] in handlers.TOPICS, tid
        topics.add(fixed(t)["camunda:topic"])
        for p in inputs(t).values():
            assert p["label"] and p["type"] in ("String", "Text", "Dropdown"), tid
            if p["type"] == "Dropdown":
                assert p["value"] in [c["value"] for c in p["choices"]], (tid, p["binding"]["name"])
        for p in t["properties"]:
            if p["binding"]["type"] == "camunda:outputParameter":
                assert p["type"] == "Hidden" and p["value"].isidentifier(), tid  # the diagram's variable, fixed
    assert topics == set(handlers.TOPICS)


def test_every_seed_service_task_is_linked_to_a_template_it_matches() -> None:
    found = templates()
    for key, task in seed_tasks():
        where = f"{key} {task.get('id')}"
        tid = task.get(f"{{{CAMUNDA}}}modelerTemplate")
        assert tid in found, f"{where}: linked to {tid!r}"
        template = found[tid]
        assert task.get(f"{{{CAMUNDA}}}modelerTemplateVersion") == str(template["version"]), where
        assert fixed(template)["camunda:topic"] == task.get(f"{{{CAMUNDA}}}topic"), where
        assert process_of(tid) in (None, key), f"{where}: {tid} is for another process"
        # outputs: exactly the task's (applying a template replaces them); bound by source
        assert outputs(template) == {source: name for name, source in params(task, "outputParameter").items()}, where
        # inputs: every one the task has; one the template would add must be one the handler ignores
        task_inputs = params(task, "inputParameter")
        assert set(task_inputs) <= set(inputs(template)), where
        for name, p in inputs(template).items():
            if name not in task_inputs:
                inert = p["value"] == "" or (name == "template" and task_inputs.get("message"))
                assert inert, f"{where}: applying {tid} would add {name}={p['value']!r}"


def test_choices_offer_every_value_the_seeds_use() -> None:
    found = templates()
    for key, task in seed_tasks():
        template = found[task.get(f"{{{CAMUNDA}}}modelerTemplate")]
        for name, value in params(task, "inputParameter").items():
            p = inputs(template)[name]
            if p["type"] == "Dropdown":
                assert value in [c["value"] for c in p["choices"]], f"{key} {task.get('id')}: {name}={value}"
    notify_choices = {c["value"] for c in inputs(found["qifu.notify"])["template"]["choices"]}
    assert set(handlers.notify.TEMPLATES) <= notify_choices


def _variables(expression: str) -> set[str]:
    tree = ast.parse(expression, mode="eval")
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - bound - called - {"True", "False", "None"}


def test_defaults_name_only_variables_their_processes_have() -> None:
    words = {key: set(re.findall(r"[A-Za-z_]\w*", path.read_text(encoding="utf-8"))) for key, path in SEEDS.items()}
    for tid, template in templates().items():
        meant = [process_of(tid)] if process_of(tid) else list(SEEDS)
        for p in inputs(template).values():
            value = str(p["value"])
            match = re.fullmatch(r"\$\{(.*)\}", value.strip(), re.S)
            if match is None:
                assert "${" not in value, (tid, value)
                continue
            for key in meant:  # a shared template's defaults must work in both processes
                missing = _variables(match.group(1)) - words[key]
                assert not missing, f"{tid} default {value} names {missing}, unknown to {key}"


@pytest.mark.req("BP-2")
def test_a_diagram_made_of_every_template_with_its_defaults_deploys(case_engine) -> None:
    tasks, flows, previous = [], [], "start"
    for n, (tid, t) in enumerate(sorted(templates().items())):
        ins = "".join(f'<camunda:inputParameter name="{name}">{escape(str(p["value"]))}</camunda:inputParameter>'
                      for name, p in inputs(t).items())
        outs = "".join(f'<camunda:outputParameter name="{var}">{escape(source)}</camunda:outputParameter>'
                       for source, var in outputs(t).items())
        tasks.append(f'<bpmn:serviceTask id="t{n}" name="{t["name"]}" camunda:type="external" '
                     f'camunda:topic="{fixed(t)["camunda:topic"]}" camunda:modelerTemplate="{tid}" '
                     f'camunda:modelerTemplateVersion="{t["version"]}"><bpmn:extensionElements><camunda:inputOutput>'
                     f"{ins}{outs}</camunda:inputOutput></bpmn:extensionElements></bpmn:serviceTask>")
        flows.append(f'<bpmn:sequenceFlow id="f{n}" sourceRef="{previous}" targetRef="t{n}" />')
        previous = f"t{n}"
    xml = (f'<?xml version="1.0" encoding="UTF-8"?><bpmn:definitions xmlns:bpmn="{BPMN}" xmlns:camunda="{CAMUNDA}" '
           f'id="d" targetNamespace="http://qifu.test/t"><bpmn:process id="templated" isExecutable="true">'
           f'<bpmn:startEvent id="start" />{"".join(tasks)}<bpmn:endEvent id="end" />{"".join(flows)}'
           f'<bpmn:sequenceFlow id="fend" sourceRef="{previous}" targetRef="end" /></bpmn:process></bpmn:definitions>')
    assert case_engine.deploy(xml.encode(), filename="templated.bpmn").deployment.process_key == "templated"
