"""The in-browser modeler (#12), in Debian's chromium: bpmn-js with the properties panel, Camunda moddle,
element templates and Qifu's lint rules, bundled from npm by scripts/build-modeler.sh.

1. A designer changes a deadline of the Pan'an diagram in the modeler and deploys version 2: the page lists
   the change and stores nothing before 确认部署; new cases run on version 2 with the new deadline, the case
   already running stays on version 1 with the old one; every ``camunda:`` attribute survives the save.
2. Each lint rule's test diagram (tools/bpmnlint-plugin-qifu/test/diagrams), opened in the modeler, shows its
   problem on the element; a diagram with an error cannot be confirmed.
3. Every element template applied in bpmn-js to every seed service task it is linked to leaves the
   scenario tests (tests/scenarios) green on the diagrams bpmn-js saved; applied to a task that is *not*
   linked, a template resets its parameters (what broke the diagrams before the tasks were linked).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import select

from engine.models import Deployment, Instance, Timer
from tests.browser.conftest import ROOT, login

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
BUNDLE = ROOT / "web" / "static" / "modeler" / "dist" / "modeler.js"
LINT_DIAGRAMS = ROOT / "tools" / "bpmnlint-plugin-qifu" / "test" / "diagrams"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
PA_FIELDS = {"unit": "PA01", "channel": "visit", "enterprise_name": "磐安县安文药业有限公司", "contact_name": "陈立",
             "contact_phone": "13857900001", "title": "厂房扩建用地手续", "description": "企业走访时反映：厂房扩建需办理用地手续。"}


@pytest.fixture(scope="module", autouse=True)
def bundle() -> None:
    """The modeler bundle, built as `make run` builds it (npm ci from the lock file, then esbuild)."""
    result = subprocess.run([str(ROOT / "scripts" / "build-modeler.sh")], capture_output=True, text=True, timeout=600)
    if result.returncode != 0 or not BUNDLE.exists():
        message = f"modeler bundle not built: {result.stderr[-2000:]}"
        if os.environ.get("QIFU_REQUIRE_NODE") == "1":
            pytest.fail(message)
        pytest.skip(message)


def open_modeler(page: Any, key: str, version: int) -> None:
    page.goto(f"/processes/{key}/{version}/edit")
    page.wait_for_selector("#modeler-app[data-state=ready]", timeout=30_000)


def newest(live_server: Any, key: str) -> int:
    return live_server.engine.repository.latest(key).version


def waiting_case(live_server: Any) -> int:
    """A Pan'an case waiting at 代办研判 with its 3-working-day timer (started on the newest version)."""
    from handlers.intake import submit_case
    from tests.scenarios.steps import complete

    engine = live_server.engine
    iid = submit_case(engine, "pan_an_station", dict(PA_FIELDS)).instance_id
    complete(engine, iid, "Task_Classify", {"classification": "complex", "scope": "area"})
    return iid


def timer_due(live_server: Any, iid: int, spec_id: str) -> Any:
    with live_server.engine.session() as s:
        return s.scalar(select(Timer.due_at).where(Timer.instance_id == iid, Timer.spec_id == spec_id,
                                                   Timer.status == "waiting"))


def case_version(live_server: Any, iid: int) -> int:
    with live_server.engine.session() as s:
        return s.get(Deployment, s.get(Instance, iid).deployment_id).version


def camunda_parts(xml: str) -> set[tuple[str, str, str]]:
    """Every camunda: attribute and element of a diagram, by the BPMN element it belongs to."""
    root = etree.fromstring(xml.encode())
    found = set()
    for node in root.iter(etree.Element):
        owner = node
        while owner is not None and owner.get("id") is None:
            owner = owner.getparent()
        where = owner.get("id") if owner is not None else ""
        for name, value in node.attrib.items():
            if name.startswith(f"{{{CAMUNDA}}}"):
                found.add((where, name, value))
        if etree.QName(node).namespace == CAMUNDA:
            found.add((where, etree.QName(node).localname, (node.text or "").strip() + str(sorted(node.attrib.items()))))
    return found


@pytest.mark.req("BP-4")
def test_a_deadline_changed_in_the_modeler_becomes_version_2_for_new_cases_only(live_server, new_page) -> None:
    engine = live_server.engine
    base = newest(live_server, "pan_an_station")
    old_case = waiting_case(live_server)
    old_due = timer_due(live_server, old_case, "Boundary_Agency3Days")
    assert old_due is not None

    page = new_page()
    login(page, "designer")
    open_modeler(page, "pan_an_station", base)
    page.click('[data-element-id="Boundary_Agency3Days"]')
    value = page.locator("#bio-properties-panel-timerEventDefinitionValue")
    if not value.is_visible():
        page.click('#modeler-properties [data-group-id="group-timer"] .bio-properties-panel-group-header')
    assert value.input_value() == "${working_days_after(received_at, 3)}"
    value.fill("${working_days_after(received_at, 4)}")
    value.press("Tab")
    page.wait_for_timeout(600)  # the properties panel writes after a short debounce

    page.click("#modeler-deploy")
    page.wait_for_selector("#modeler-app[data-state=previewed]")
    change = page.locator('#modeler-report li[data-element="Boundary_Agency3Days"]')
    assert "working_days_after(received_at, 4)" in change.inner_text()
    assert newest(live_server, "pan_an_station") == base  # nothing stored before the confirmation
    page.click("#modeler-confirm")
    page.wait_for_selector("#modeler-app[data-state=deployed]")
    assert f"已部署为版本 {base + 1}" in page.inner_text("#deployed")
    assert page.js_errors == []

    with engine.session() as s:
        v1, v2 = (s.scalar(select(Deployment).where(Deployment.process_key == "pan_an_station",
                                                    Deployment.version == v)) for v in (base, base + 1))
        old_xml, new_xml, deployed_by = v1.xml, v2.xml, v2.deployed_by
    assert deployed_by == "designer"
    # every camunda: attribute and element survived the modeler's save; only the deadline changed
    assert camunda_parts(old_xml) == camunda_parts(new_xml)
    assert new_xml.count("working_days_after(received_at, 4)") == 1 and "modelerTemplate" in new_xml

    new_case = waiting_case(live_server)
    assert case_version(live_server, new_case) == base + 1 and case_version(live_server, old_case) == base
    new_due = timer_due(live_server, new_case, "Boundary_Agency3Days")
    assert timer_due(live_server, old_case, "Boundary_Agency3Days") == old_due
    # both cases were received today: the new version's deadline is one working day later
    assert engine.calendar.snapshot().working_days_between(old_due.date(), new_due.date()) == 1


RULES = {  # test diagram: (rule, element it flags)
    "unknown-topic": ("qifu/known-topic", "task"),
    "not-external": ("qifu/known-topic", "task"),
    "invalid-expression": ("qifu/valid-expression", "late"),
    "juel-expression": ("qifu/valid-expression", "late"),
    "hostile-expression": ("qifu/valid-expression", "late"),
    "calendar-days": ("qifu/working-day-deadline", "late"),
    "form-field-type": ("qifu/form-field-type", "task"),
    "user-task-assignment": ("qifu/user-task-assignment", "task"),
}


def opened(page: Any, name: str) -> None:
    """Wait until the modeler says it opened the file (the status line names it)."""
    page.locator("#modeler-status", has_text=f"已打开 {name}").wait_for()


def lint_overlay(page: Any, element: str) -> Any:
    return page.locator(f'.djs-overlays[data-container-id="{element}"] .bjsl-overlay')


def test_each_lint_rule_shows_its_problem_on_the_element(live_server, new_page) -> None:
    page = new_page()
    login(page, "designer")
    open_modeler(page, "pan_an_station", 1)
    assert page.locator(".bjsl-overlay").count() == 0  # the seed diagram has no problem
    for name, (rule, element) in RULES.items():
        page.set_input_files("#modeler-open", str(LINT_DIAGRAMS / f"{name}.bpmn"))
        opened(page, f"{name}.bpmn")
        overlay = lint_overlay(page, element)
        overlay.wait_for(state="attached", timeout=10_000)
        rules = overlay.locator("li[data-rule]").evaluate_all("items => items.map(i => i.dataset.rule)")
        assert rule in rules, (name, rules)
        icon = "warning" if rule == "qifu/working-day-deadline" else "error"
        assert overlay.locator(f".bjsl-icon-{icon}").count() == 1, name
    page.set_input_files("#modeler-open", str(LINT_DIAGRAMS / "clean.bpmn"))
    opened(page, "clean.bpmn")
    page.wait_for_timeout(500)
    assert page.locator(".bjsl-overlay").count() == 0
    # an error blocks the deploy: the page says what to fix, and there is nothing to confirm
    page.set_input_files("#modeler-open", str(LINT_DIAGRAMS / "hostile-expression.bpmn"))
    opened(page, "hostile-expression")
    page.click("#modeler-deploy")
    page.wait_for_selector("#modeler-app[data-state=refused]")
    assert "__import__" in page.inner_text("#server-refusal") and page.locator("#modeler-confirm").count() == 0
    assert live_server.engine.repository.latest("hostile_expression") is None
    page.set_input_files("#modeler-open", str(LINT_DIAGRAMS / "juel-expression.bpmn"))
    opened(page, "juel-expression")
    page.click("#modeler-deploy")
    page.wait_for_selector("#modeler-app[data-state=previewed]")
    assert "请先修正 1 个错误" in page.inner_text("#fix-first") and page.locator("#modeler-confirm").count() == 0
    assert page.js_errors == []


APPLY_TEMPLATES = """async () => {
  const modeler = window.qifuModeler;
  const templates = modeler.get('elementTemplates');
  const applied = [];
  for (const element of modeler.get('elementRegistry').filter((e) => e.businessObject.$type === 'bpmn:ServiceTask')) {
    const bo = element.businessObject;
    const template = templates.get(bo.get('camunda:modelerTemplate'), Number(bo.get('camunda:modelerTemplateVersion')));
    if (!template) { throw new Error('no template linked to ' + element.id); }
    templates.applyTemplate(element, template);
    applied.push([element.id, template.id]);
  }
  const { xml } = await modeler.saveXML({ format: true });
  return { applied, xml };
}"""

UNLINKED = """async (id) => {
  const modeler = window.qifuModeler;
  const element = modeler.get('elementRegistry').get(id);
  const templates = modeler.get('elementTemplates');
  const template = templates.get(element.businessObject.get('camunda:modelerTemplate'), 1);
  modeler.get('modeling').updateProperties(element, { 'camunda:modelerTemplate': undefined,
                                                      'camunda:modelerTemplateVersion': undefined });
  templates.applyTemplate(element, template);
  const applied = modeler.get('elementRegistry').get(id);  // the template may replace the shape
  const io = applied.businessObject.extensionElements.values.find((v) => v.$type === 'camunda:InputOutput');
  return { inputs: io.inputParameters.map((p) => [p.name, p.value]),
           outputs: (io.outputParameters || []).map((p) => [p.name, p.value]) };
}"""


def service_parameters(xml: str) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    """Per service task: its input parameters and its output parameters, name → text."""
    root = etree.fromstring(xml.encode())
    ns = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL", "camunda": CAMUNDA}
    return {task.get("id"): tuple({p.get("name"): (p.text or "").strip() for p in task.iterfind(f".//camunda:{tag}", ns)}
                                  for tag in ("inputParameter", "outputParameter"))
            for task in root.iterfind(".//bpmn:serviceTask", ns)}


def inert(name: str, value: str, inputs: dict[str, str]) -> bool:
    """A parameter a template adds that the handler ignores: an empty one (handlers treat it as absent), or a
    notify ``template`` beside a ``message`` (the message is sent instead of the template's text)."""
    return value == "" or (name == "template" and bool(inputs.get("message")))


def same_parameters(seed: str, saved: str) -> list[str]:
    """What the template application changed beyond inert additions (empty when nothing)."""
    before, after = service_parameters(seed), service_parameters(saved)
    problems = [f"{task}: missing" for task in before if task not in after]
    for task, (inputs, outputs) in before.items():
        new_inputs, new_outputs = after.get(task, ({}, {}))
        if new_outputs != outputs:
            problems.append(f"{task}: outputs {outputs} -> {new_outputs}")
        for name, value in inputs.items():
            if new_inputs.get(name) != value:
                problems.append(f"{task}: input {name}={value!r} -> {new_inputs.get(name)!r}")
        for name, value in new_inputs.items():
            if name not in inputs and not inert(name, value, new_inputs):
                problems.append(f"{task}: added input {name}={value!r}")
    return problems


@pytest.mark.req("BP-1", "BP-2")
def test_templates_applied_in_bpmn_js_keep_the_scenario_tests_green(live_server, new_page, tmp_path: Path) -> None:
    page = new_page()
    login(page, "designer")
    for key in ("pan_an_station", "fenghua_one_place"):
        open_modeler(page, key, 1)
        result = page.evaluate(APPLY_TEMPLATES)
        seed = (ROOT / "processes" / f"{key}.bpmn").read_text(encoding="utf-8")
        assert len(result["applied"]) == seed.count("<bpmn:serviceTask ") and result["applied"]
        assert same_parameters(seed, result["xml"]) == [], key
        (tmp_path / f"{key}.bpmn").write_text(result["xml"], encoding="utf-8")
    # the control: a template applied to a task that is not linked to it resets what the task said
    open_modeler(page, "pan_an_station", 1)
    reset = page.evaluate(UNLINKED, "Task_LedgerClose")
    assert reset["inputs"] == [["action", "register"]]  # was close: this is what a link prevents
    assert page.js_errors == []

    env = {k: v for k, v in os.environ.items() if k not in ("QIFU_TEST_PG_URL", "QIFU_REQUIRE_PG")}
    env["QIFU_SCENARIO_PROCESSES"] = str(tmp_path)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                          "tests.browser.templated_processes", "tests/scenarios"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    tail = run.stdout[-3000:]
    assert run.returncode == 0, tail
    assert " passed" in tail and "failed" not in tail and "error" not in tail.lower(), tail
