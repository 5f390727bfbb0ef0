"""``qifu --json …`` prints exactly one JSON document on stdout, for every command, on success and on refusal.

The commands are found by walking the click tree of :data:`web.cli.main`, so a new command is covered the
moment it exists — and this test fails until it has an argument set in :data:`COMMANDS` (a valid run and a
refused one). Each run gets its own copy of a SQLite database made once per module with ``qifu init``, the
seed processes deployed, one case submitted through ``handlers.intake.submit_case`` and one API client.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from engine import db
from web.cli import main

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = sorted((ROOT / "processes").glob("*.bpmn"))
SCHEDULE = ROOT / "docs" / "examples" / "schedule-2027.csv"
CLASSIFY = json.dumps({"classification": "simple", "scope": "point"})
CASE_DATA = json.dumps({"region": "pan_an", "unit": "PA01", "enterprise_name": "磐安某药业有限公司",
                        "received_at": "2026-09-30T10:00:00+08:00"}, ensure_ascii=False)
FIELDS = {"unit": "PA01", "channel": "walk_in", "enterprise_name": "磐安某药业有限公司", "contact_name": "李女士",
          "contact_phone": "0579-84661160", "description": "排污许可证延续办理进度咨询"}

# commands that never return: they run until stopped, so there is no document to read
EXEMPT = {
    "serve": "starts the web server and blocks until stopped",
    "worker": "starts the timer executor and blocks until stopped",
}


@dataclass
class Env:
    """What the argument sets refer to: the prepared database's case, task and API client, a scratch dir."""

    tmp: Path
    business_key: str
    task: str
    client: str = "setup-client"
    user: str = "setup_clerk"


@dataclass
class Args:
    good: Callable[[Env], list[str]]
    bad: Callable[[Env], list[str]]
    expect: Callable[[Any], bool]  # what a good run's document holds
    good_input: str | None = None
    bad_input: str | None = None
    bad_env: dict[str, str] = field(default_factory=dict)


def _broken_bpmn(env: Env) -> str:
    path = env.tmp / "broken.bpmn"
    path.write_text("<definitions>not a diagram", encoding="utf-8")
    return str(path)


def _bad_schedule(env: Env) -> str:
    path = env.tmp / "bad-schedule.csv"
    path.write_text("year=2027\n2027-02-30,holiday\n", encoding="utf-8")
    return str(path)


COMMANDS: dict[str, Args] = {
    "init": Args(lambda e: ["init", "--demo"], lambda e: ["init", "--demo", "--force"],
                 lambda d: d["calendar_days"] >= 0 and "demo" in d and d["demo_users"]["total"] > 0),
    "deploy": Args(lambda e: ["deploy", *map(str, PROCESSES)], lambda e: ["deploy", _broken_bpmn(e)],
                   lambda d: sorted(r["process"] for r in d) == ["fenghua_one_place", "pan_an_station"]),
    "case start": Args(lambda e: ["case", "start", "pan_an_station", "CLI-0001", "--data", CASE_DATA],
                       lambda e: ["case", "start", "pan_an_station", "CLI-0002", "--data", "[1, 2]"],
                       lambda d: d["business_key"] == "CLI-0001" and d["opened"]),
    "message send": Args(lambda e: ["message", "send", "materials", "CLI-MSG-1", "--data", '{"pages": 3}'],
                         lambda e: ["message", "send", "withdraw", "CLI-MSG-1"],
                         lambda d: d["business_key"] == "CLI-MSG-1" and d["sent"] == "materials" and d["opened"]),
    "signal send": Args(lambda e: ["signal", "send", "go", "--data", '{"batch": 1}'],
                        lambda e: ["signal", "send", "nobody-waits"],
                        lambda d: d["sent"] == "go" and d["delivered"] == ["CLI-SIG-1"] and d["failed"] == []),
    "report kpi": Args(lambda e: ["report", "kpi", "--period", "2026-Q3", "--region", "pan_an"],
                       lambda e: ["report", "kpi", "--period", "2026-13"],
                       lambda d: d["period"] == "2026-Q3" and d["region"] == "pan_an" and "total" in d),
    "report monthly": Args(lambda e: ["report", "monthly", "--month", "2026-09", "--format", "html",
                                      "-o", str(e.tmp / "briefing.html")],
                           lambda e: ["report", "monthly", "--month", "2026-09", "--format", "docx"],
                           lambda d: d["month"] == "2026-09" and "一、基本情况" in d["sections"]),
    "report assessment": Args(lambda e: ["report", "assessment", "--year", "2026", "--region", "fenghua",
                                         "--xlsx", str(e.tmp / "assessment.xlsx")],
                              lambda e: ["report", "assessment", "--year", "9999"],
                              lambda d: d["period"] == "2026" and len(d["rows"]) > 0),
    "task list": Args(lambda e: ["task", "list", "--group", "综合受理板块"], lambda e: ["task", "list", "--mine"],
                      lambda d: [t["task"] for t in d] == [d[0]["task"]] and d[0]["element"] == "Task_Classify"),
    "task complete": Args(lambda e: ["task", "complete", e.task, "--data", CLASSIFY],
                          lambda e: ["task", "complete", e.task, "--data", '{"classification": "nonsense"}'],
                          lambda d: d["status"] and isinstance(d["opened"], list)),
    "workdays add": Args(lambda e: ["workdays", "add", "2026-09-30", "2"],
                         lambda e: ["workdays", "add", "2026-02-30", "2"],
                         lambda d: d["result"] == "2026-10-09"),
    "workdays show": Args(lambda e: ["workdays", "show", "2026-10"], lambda e: ["workdays", "show", "10/2026"],
                          lambda d: d["month"] == "2026-10" and len(d["days"]) == 31),
    "workdays set": Args(lambda e: ["workdays", "set", "2027-01-04", "rest", "--note", "测试"],
                         lambda e: ["workdays", "set", "2027-01-04", "sometimes"],
                         lambda d: d["workday"] is False),
    "workdays import": Args(lambda e: ["workdays", "import", str(SCHEDULE)], lambda e: ["workdays", "import", _bad_schedule(e)],
                            lambda d: d["year"] == 2027),
    "workdays recompute": Args(lambda e: ["workdays", "recompute", "--all"],
                               lambda e: ["workdays", "recompute", "--all", "now"],
                               lambda d: d["failures"] == []),
    "audit verify": Args(lambda e: ["audit", "verify"], lambda e: ["audit", "verify", "everything"],
                         lambda d: d["ok"] is True and d["problems"] == [] and d["checked"] == 3),  # with CLI-MSG-1, CLI-SIG-1
    "audit export": Args(lambda e: ["audit", "export", "--format", "xes", "--output", str(e.tmp / "log.xes")],
                         lambda e: ["audit", "export", "--format", "csv", "--from", "2026-13-01",
                                    "--output", str(e.tmp / "log.csv")],
                         lambda d: d["format"] == "xes" and d["bytes"] > 0),
    "audit keys": Args(lambda e: ["audit", "keys"], lambda e: ["audit", "keys"],
                       lambda d: [k["signs"] for k in d["keys"]] == [True], bad_env={"QIFU_HISTORY_KEY_FILE": "/dev/null"}),
    "audit rotate-key": Args(lambda e: ["audit", "rotate-key"], lambda e: ["audit", "rotate-key"],
                             lambda d: d["keys"] == [d["previous"], d["key_id"]],
                             bad_env={"QIFU_HISTORY_KEY_FILE": "/dev/null"}),
    "audit seal": Args(lambda e: ["audit", "seal"], lambda e: ["audit", "seal"],
                       lambda d: d == {"signed": 0, "chains": 0, "refused": []},
                       bad_env={"QIFU_HISTORY_KEY_FILE": "/dev/null"}),
    "audit replay": Args(lambda e: ["audit", "replay", e.business_key, "--step", "1"],
                         lambda e: ["audit", "replay", "NO-SUCH-CASE"],
                         lambda d: d["step"] == 1 and d["data"]["unit"] == "PA01"),
    "user add": Args(lambda e: ["user", "add", "cli_clerk", "--unit", "PA01", "--role", "综合受理板块", "--password-stdin"],
                     lambda e: ["user", "add", "cli_clerk", "--unit", "PA01", "--role", "综合受理板块", "--password-stdin"],
                     lambda d: d["username"] == "cli_clerk", good_input="a-long-enough-password\n",
                     bad_input="short\n"),
    "user list": Args(lambda e: ["user", "list"], lambda e: ["user", "list", "everyone"],
                      lambda d: [u["username"] for u in d] == [Env.user]),
    "user passwd": Args(lambda e: ["user", "passwd", e.user, "--password-stdin"],
                        lambda e: ["user", "passwd", "no_such_user", "--password-stdin"],
                        lambda d: d["username"] == Env.user, good_input="another-long-password\n",
                        bad_input="another-long-password\n"),
    "user reset": Args(lambda e: ["user", "reset", e.user], lambda e: ["user", "reset", "no_such_user"],
                       lambda d: d["username"] == Env.user and len(d["temporary_password"]) >= 12),
    "user set": Args(lambda e: ["user", "set", e.user, "--role", "代办服务板块", "--display-name", "受理员"],
                     lambda e: ["user", "set", e.user, "--unit", "NO-SUCH-UNIT"],
                     lambda d: set(d["changed"]) == {"roles", "display_name"}),
    "user disable": Args(lambda e: ["user", "disable", e.user], lambda e: ["user", "disable", "no_such_user"],
                         lambda d: d["active"] is False),
    "user enable": Args(lambda e: ["user", "enable", e.user], lambda e: ["user", "enable", "no_such_user"],
                        lambda d: d["active"] is True),
    "unit list": Args(lambda e: ["unit", "list", "--region", "pan_an"], lambda e: ["unit", "list", "--region", "mars"],
                      lambda d: "PA01" in [u["code"] for u in d]),
    "unit set": Args(lambda e: ["unit", "set", "PA01", "--liaison", "张三", "--phone", "13800000000"],
                     lambda e: ["unit", "set", "NO-SUCH-UNIT", "--liaison", "张三"],
                     lambda d: d["liaison_name"] == "张三"),
    "api-client add": Args(lambda e: ["api-client", "add", "cli-client", "--channel", "wechat_account"],
                           lambda e: ["api-client", "add", "cli-client", "--channel", "walk_in"],
                           lambda d: d["name"] == "cli-client" and d["token"]),
    "api-client list": Args(lambda e: ["api-client", "list"], lambda e: ["api-client", "list", "--all"],
                            lambda d: [c["name"] for c in d] == [Env.client]),
    "api-client revoke": Args(lambda e: ["api-client", "revoke", e.client],
                              lambda e: ["api-client", "revoke", "no-such-client"],
                              lambda d: "message" in d),
    "outbox list": Args(lambda e: ["outbox", "list"], lambda e: ["outbox", "list", "--limit", "many"],
                        lambda d: isinstance(d, list)),
    "outbox send": Args(lambda e: ["outbox", "send"], lambda e: ["outbox", "send"], lambda d: "sent" in d,
                        bad_env={"QIFU_SENDER": "no_such_module:Sender"}),
    "briefing": Args(lambda e: ["briefing", "2026-09", "--xlsx", str(e.tmp / "briefing.xlsx")],
                     lambda e: ["briefing", "2026-13"], lambda d: d["xlsx"].endswith("briefing.xlsx")),
    "incident list": Args(lambda e: ["incident", "list", "--status", "all"],
                          lambda e: ["incident", "list", "--status", "closed"],
                          lambda d: d["counts"] == {"open": 1, "resolved": 0} and d["incidents"][0]["job_type"] == "outbox"),
    "incident retry": Args(lambda e: ["incident", "retry", "1"], lambda e: ["incident", "retry", "999"],
                           lambda d: d == {"incident": 1, "fired": False, "resolution": "requeued"}),
    "incident resolve": Args(lambda e: ["incident", "resolve", "1", "--note", "已人工通知企业"],
                             lambda e: ["incident", "resolve", "1"],
                             lambda d: d["status"] == "resolved" and d["note"] == "已人工通知企业"),
    "migrate": Args(lambda e: ["migrate", "pan_an_station", "--from", "1", "--to", "2", "--dry-run"],
                    lambda e: ["migrate", "pan_an_station", "--from", "1", "--to", "9"],
                    lambda d: d["dry_run"] and d["total"] == 1 and d["cases"][0]["migrate"] is True),
    "settings": Args(lambda e: ["settings"], lambda e: ["settings"],
                     lambda d: any(r["variable"] == "QIFU_DATABASE_URL" and r["value"] for r in d),
                     bad_env={"QIFU_TRUSTED_PROXIES": "many"}),
}


def _walk(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        yield " ".join((*path, name)), command
        if isinstance(command, click.Group):
            yield from _walk(command, (*path, name))


GROUPS = [name for name, command in _walk(main) if isinstance(command, click.Group)]
LEAVES = [name for name, command in _walk(main) if not isinstance(command, click.Group)]
RUN = [name for name in LEAVES if name not in EXEMPT]


def invoke(url: str, args: list[str], input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["--json", *args], input=input,
                              env={"QIFU_DATABASE_URL": url, "QIFU_SENDER": None, **(env or {})})


def document(result: Result) -> Any:
    """The one JSON document on stdout; json.loads refuses anything before or after it."""
    assert result.stdout.strip(), f"nothing on stdout (stderr: {result.stderr!r})"
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        pytest.fail(f"stdout is not one JSON document ({exc}):\n{result.stdout}")


def _release(url: str) -> None:
    db.dispose(url)


class _Refusing:
    def send(self, message: Any) -> None:
        raise RuntimeError("短信网关拒绝")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A database set up the way an operator would: init, deploy, a case submitted, an API client, a user."""
    from engine import tasks
    from handlers import notify
    from handlers.intake import submit_case
    from handlers.models import Outbox
    from web.auth import add_user
    from web.engine import build_engine
    from web.settings import Settings
    from web.views.api import create_client

    path = tmp_path_factory.mktemp("cli") / "prepared.db"
    url = f"sqlite:///{path}"
    for args in (["init"], ["deploy", *map(str, PROCESSES)]):
        result = invoke(url, args)
        assert result.exit_code == 0, result.stdout + result.stderr
    engine = build_engine(Settings.from_env({"QIFU_DATABASE_URL": url,
                                             "QIFU_HISTORY_KEY_FILE": os.environ["QIFU_HISTORY_KEY_FILE"]}))
    case = submit_case(engine, "pan_an_station", FIELDS, actor="clerk")
    # version 2 (a later deadline changed) for qifu migrate; the case stays on version 1
    pan_an = (ROOT / "processes" / "pan_an_station.bpmn").read_text(encoding="utf-8")
    engine.deploy(pan_an.replace("working_days_after(received_at, 30)", "working_days_after(received_at, 31)").encode(),
                  filename="pan_an_station.bpmn", actor="designer")
    with engine.session() as session:
        create_client(session, Env.client, ["wechat_account"], engine.clock.now())
        add_user(session, Env.user, "setup-password", unit="PA01", roles=["综合受理板块"], now=engine.clock.now())
        # a message the gateway refused on its only attempt: incident #1 (for qifu incident …)
        session.add(Outbox(business_key=case.business_key, recipient="enterprise", address="0579-84661160",
                           template="received", body="测试消息", created_at=engine.clock.now(), attempts=0))
        session.flush()
        notify.deliver_pending(session, _Refusing(), engine.clock.now(), max_attempts=1)
    task = engine.tasks.query(tasks.TaskQuery()).rows[0].task_guid
    # a case waiting for the message materials (for qifu message send)
    engine.deploy((ROOT / "tests" / "conformance" / "diagrams" / "c_message_from_outside.bpmn").read_bytes(),
                  filename="c_message_from_outside.bpmn")
    engine.runtime.start("c_message_from_outside", "CLI-MSG-1", {})
    engine.deploy((ROOT / "tests" / "conformance" / "diagrams" / "c_signal_from_outside.bpmn").read_bytes(),
                  filename="c_signal_from_outside.bpmn")
    engine.runtime.start("c_signal_from_outside", "CLI-SIG-1", {})  # waiting for the signal go
    _release(url)
    return path, case.business_key, task


@pytest.fixture
def env(prepared: tuple[Path, str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Env]]:
    template, business_key, task = prepared
    path = tmp_path / "qifu.db"
    shutil.copy(template, path)
    keys = tmp_path / "history_keys"  # the history keys the rows were signed with; a copy, so rotate-key is local
    shutil.copy(os.environ["QIFU_HISTORY_KEY_FILE"], keys)
    monkeypatch.setenv("QIFU_HISTORY_KEY_FILE", str(keys))
    url = f"sqlite:///{path}"
    yield url, Env(tmp_path, business_key, task)
    _release(url)


def snapshot(url: str) -> list[str]:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return list(conn.iterdump())


def test_every_command_has_an_argument_set_or_a_reason_to_be_skipped() -> None:
    missing = sorted(set(LEAVES) - set(COMMANDS) - set(EXEMPT))
    assert not missing, f"add these commands to COMMANDS in {__name__} (a valid and a refused argument set): {missing}"
    stale = sorted((set(COMMANDS) | set(EXEMPT)) - set(LEAVES))
    assert not stale, f"entries for commands that no longer exist: {stale}"
    assert len(RUN) >= 20  # the walk found the tree (a broken walk must not pass by finding nothing)


@pytest.mark.parametrize("name", RUN)
def test_valid_arguments_print_one_json_document(env: tuple[str, Env], name: str) -> None:
    url, where = env
    args = COMMANDS[name]
    result = invoke(url, args.good(where), input=args.good_input)
    doc = document(result)
    assert result.exit_code == 0, (doc, result.stderr)
    assert not (isinstance(doc, dict) and "error" in doc), doc
    assert args.expect(doc), doc


@pytest.mark.parametrize("name", RUN)
def test_bad_arguments_print_one_json_error_exit_2_and_change_nothing(env: tuple[str, Env], name: str) -> None:
    url, where = env
    args = COMMANDS[name]
    bad = args.bad(where)
    before = snapshot(url)
    result = invoke(url, bad, input=args.bad_input, env=args.bad_env)
    doc = document(result)
    assert result.exit_code == 2, (doc, result.stderr)
    assert isinstance(doc, dict) and isinstance(doc["error"], str) and doc["message"], doc
    assert snapshot(url) == before


@pytest.mark.parametrize("name", LEAVES)
def test_an_unknown_option_is_a_json_usage_error(name: str) -> None:
    result = CliRunner().invoke(main, ["--json", *name.split(), "--no-such-option"])
    doc = document(result)
    assert result.exit_code == 2
    assert doc["error"] == "usage" and "--no-such-option" in doc["message"] and doc["command"].endswith(name)


@pytest.mark.parametrize("name", ["", *GROUPS, *LEAVES])
def test_help_is_one_json_document(name: str) -> None:
    result = CliRunner().invoke(main, ["--json", *name.split(), "--help"])
    doc = document(result)
    assert result.exit_code == 0 and doc["help"].startswith("Usage: ")


@pytest.mark.parametrize("args", [[], ["no-such-command"], ["--no-such-option"], ["task"]])
def test_a_wrong_command_line_is_a_json_usage_error(args: list[str]) -> None:
    result = CliRunner().invoke(main, ["--json", *args])
    doc = document(result)
    assert result.exit_code == 2 and doc["error"] == "usage" and doc["message"]


def test_tampered_history_exits_1_with_a_json_report(env: tuple[str, Env]) -> None:
    url, _ = env
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE event SET actor = 'mallory' WHERE seq = 1")
    result = invoke(url, ["audit", "verify"])
    doc = document(result)
    assert result.exit_code == 1
    assert doc["ok"] is False and doc["problems"] and doc["problems"][0]["seq"] == 1


def test_a_crash_is_still_one_json_document(env: tuple[str, Env], monkeypatch: pytest.MonkeyPatch) -> None:
    from engine import tasks

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(tasks.TaskService, "query", broken)
    url, _ = env
    result = invoke(url, ["task", "list"])
    assert document(result) == {"error": "internal_error", "message": "RuntimeError: disk on fire"}
    assert result.exit_code == 1 and "disk on fire" in result.stderr  # the traceback, for whoever debugs it


def test_the_installed_command_prints_one_document_in_a_real_process(env: tuple[str, Env]) -> None:
    """The same through a real process: the task table once came after the JSON (issue #10)."""
    url, _ = env
    proc = subprocess.run([sys.executable, "-c", "from web.cli import main; main()", "--json", "task", "list"],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "QIFU_DATABASE_URL": url},
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert [t["element"] for t in json.loads(proc.stdout)] == ["Task_Classify"]


def test_progress_lines_go_to_stderr_not_into_the_document(env: tuple[str, Env], monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a command echoes besides its result (progress, a banner) must not spoil stdout."""
    from engine import tasks

    def chatty(*args: Any, **kwargs: Any) -> tasks.TaskPage:
        click.echo("正在查询待办…")
        return tasks.TaskPage([], 1, 1, 0)

    monkeypatch.setattr(tasks.TaskService, "query", chatty)
    url, _ = env
    result = invoke(url, ["task", "list"])
    assert document(result) == [] and result.exit_code == 0
    assert "正在查询待办" in result.stderr


def test_a_second_result_is_a_bug_reported_as_json_not_a_second_document(
        env: tuple[str, Env], monkeypatch: pytest.MonkeyPatch) -> None:
    from engine import tasks
    from web.cli import CliState

    def answers_early(*args: Any, **kwargs: Any) -> tasks.TaskPage:
        click.get_current_context().find_object(CliState).out("", {"early": True})
        return tasks.TaskPage([], 1, 1, 0)

    monkeypatch.setattr(tasks.TaskService, "query", answers_early)
    url, _ = env
    result = invoke(url, ["task", "list"])
    doc = document(result)
    assert result.exit_code == 1 and doc["error"] == "internal_error" and "out() was called twice" in doc["message"]


def test_an_unwritable_xlsx_path_is_a_refusal_not_a_crash(env: tuple[str, Env]) -> None:
    url, where = env
    result = invoke(url, ["briefing", "2026-09", "--xlsx", str(where.tmp / "no-such-dir" / "briefing.xlsx")])
    doc = document(result)
    assert result.exit_code == 2 and doc["error"] == "error" and doc["message"].startswith("无法写入")


@pytest.mark.postgres_only
def test_init_does_not_print_the_database_password(db_url: str) -> None:
    """The document lands in logs and CI output: the URL is shown with its password masked."""
    from sqlalchemy.engine import make_url

    url = make_url(db_url).set(password="s3cret-in-url").render_as_string(hide_password=False)
    result = invoke(url, ["init"])
    doc = document(result)
    assert result.exit_code == 0, doc
    assert "s3cret-in-url" not in result.stdout + result.stderr and ":***@" in doc["database"]
    _release(url)
