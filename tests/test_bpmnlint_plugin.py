"""Qifu's bpmnlint rules (tools/bpmnlint-plugin-qifu, #12 item 4) as the CI check runs them: each rule flags its
test diagram on the element, a clean diagram and the seeds pass, the data the rules judge against is the
server's (a snapshot the plugin ships, kept equal to ``python -m web.designer_lint --data``), and the plugin and
the server find the same expressions in a diagram. The modeler runs the same rules (tests/browser/test_modeler.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from web import designer_lint

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "tools" / "bpmnlint-plugin-qifu"
DIAGRAMS = PLUGIN / "test" / "diagrams"
CHECK = ROOT / "scripts" / "check-bpmn.sh"
EXPECTED = {  # test diagram: (rule, level, element, words of the message)
    "unknown-topic": ("qifu/known-topic", "error", "task", "未注册的服务主题「no_such_topic」"),
    "not-external": ("qifu/known-topic", "error", "task", "必须是 Camunda 外部任务"),
    "invalid-expression": ("qifu/valid-expression", "error", "late", "语法错误"),
    "juel-expression": ("qifu/valid-expression", "error", "late", "JUEL 写法 true"),
    "hostile-expression": ("qifu/valid-expression", "error", "late", "__import__"),
    "calendar-days": ("qifu/working-day-deadline", "warning", "late", "按日历日计算"),
    "form-field-type": ("qifu/form-field-type", "error", "task", "textarea 无法在任务表单中填写"),
    "user-task-assignment": ("qifu/user-task-assignment", "error", "task", "没有人会在待办中看到它"),
}


def _node() -> None:
    if shutil.which("node") and shutil.which("npm"):
        return
    if os.environ.get("QIFU_REQUIRE_NODE") == "1":
        pytest.fail("QIFU_REQUIRE_NODE=1 but node/npm are missing")
    pytest.skip("node/npm not installed")


def check(*files: Path) -> subprocess.CompletedProcess[str]:
    _node()
    return subprocess.run([str(CHECK), *map(str, files)], capture_output=True, text=True, timeout=600, cwd=ROOT)


def qifu_findings(output: str) -> list[tuple[str, str, str, str]]:
    return [(m[0], m[1], m[2], m[3]) for m in re.findall(r"^\s+(qifu/[\w-]+)\s+(error|warning)\s+(\S+)\s+(.*)$",
                                                          output, re.M)]


def test_the_snapshot_the_plugin_ships_is_the_servers_lint_data() -> None:
    import handlers
    from engine.services import ServiceRegistry

    registry = ServiceRegistry()
    handlers.register(registry)
    assert json.loads((PLUGIN / "qifu-data.json").read_text(encoding="utf-8")) == designer_lint.lint_data(registry), \
        "regenerate: python -m web.designer_lint --data > tools/bpmnlint-plugin-qifu/qifu-data.json"


def test_each_rule_flags_its_test_diagram_in_the_ci_check() -> None:
    result = check(*(DIAGRAMS / f"{name}.bpmn" for name in EXPECTED), DIAGRAMS / "clean.bpmn")
    assert result.returncode == 1, result.stdout + result.stderr  # errors fail the check
    blocks = dict(re.findall(r"^(?:OK  |FAIL) \S*?([\w-]+)\.bpmn: .*\n((?:  .*\n)*)", result.stdout, re.M))
    assert set(blocks) == {*EXPECTED, "clean"}, result.stdout
    for name, (rule, level, element, words) in EXPECTED.items():
        found = qifu_findings(blocks[name])
        assert [(r, lv, el) for r, lv, el, _ in found] == [(rule, level, element)] * len(found) and found, (name, found)
        assert any(words in message for *_, message in found), (name, found)
    assert qifu_findings(blocks["clean"]) == []
    assert re.search(r"^OK   \S*clean\.bpmn", result.stdout, re.M)
    assert re.search(r"^OK   \S*calendar-days\.bpmn", result.stdout, re.M)  # a hint, not an error


def test_the_seed_diagrams_pass_qifus_rules() -> None:
    result = check(*sorted((ROOT / "processes").glob("*.bpmn")))
    assert result.returncode == 0, result.stdout + result.stderr
    assert qifu_findings(result.stdout) == []


def test_without_the_servers_verdicts_only_juel_habits_are_flagged(tmp_path: Path) -> None:
    """What the plugin decides alone (no QIFU_LINT_DATA): a hostile expression needs the server's verdict."""
    empty = tmp_path / "data.json"
    empty.write_text(json.dumps({"verdicts": {}}), encoding="utf-8")
    _node()
    result = subprocess.run([str(CHECK), str(DIAGRAMS / "hostile-expression.bpmn"), str(DIAGRAMS / "juel-expression.bpmn")],
                            capture_output=True, text=True, timeout=600, cwd=ROOT,
                            env={**os.environ, "QIFU_LINT_DATA": str(empty)})
    assert [f[0] for f in qifu_findings(result.stdout)] == ["qifu/valid-expression"]
    assert "hostile-expression.bpmn: 0 import problem(s), 0 lint error(s)" in result.stdout


def test_the_plugin_and_the_server_find_the_same_expressions() -> None:
    """tools/bpmnlint-plugin-qifu/expressions.js and web/designer_lint.collect walk a diagram alike."""
    _node()
    script = """
const path = require('path');
const { createRequire } = require('module');
const tool = createRequire(path.join(process.argv[1], 'tools/bpmn-check/package.json'));
const BpmnModdle = tool('bpmn-moddle');
const camunda = tool('camunda-bpmn-moddle/resources/camunda.json');
const { collectExpressions } = tool('bpmnlint-plugin-qifu/expressions');
const fs = require('fs');
(async () => {
  const out = {};
  for (const file of process.argv.slice(2)) {
    const { rootElement } = await new BpmnModdle({ camunda }).fromXML(fs.readFileSync(file, 'utf-8'));
    out[file] = collectExpressions(rootElement).map((e) => [e.kind, e.text, e.id]);
  }
  process.stdout.write(JSON.stringify(out));
})();
"""
    check(DIAGRAMS / "clean.bpmn")  # installs tools/bpmn-check's node_modules if needed
    files = [*sorted((ROOT / "processes").glob("*.bpmn")), *sorted(DIAGRAMS.glob("*.bpmn")),
             ROOT / "tests" / "diagrams" / "loop_parallel.bpmn"]
    result = subprocess.run(["node", "-e", script, str(ROOT), *map(str, files)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    from_js = json.loads(result.stdout)
    for file in files:
        python = sorted(designer_lint.collect(file.read_bytes()))
        assert sorted(map(tuple, from_js[str(file)])) == python, file.name
        if file.parent.name == "processes":
            assert len(python) > 20
