"""Users: the demo accounts cover every role, ``qifu user add`` reads the password from stdin."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select
from werkzeug.security import check_password_hash

from web.models import User

from .conftest import login

DOMAIN = Path(__file__).resolve().parents[2] / "docs" / "domain.md"


def test_demo_users_cover_every_role_of_the_domain_contract(web_engine):
    from web.demo.users import DEMO_USERS

    text = DOMAIN.read_text(encoding="utf-8")
    section = text[text.index("## Candidate groups"):text.index("## Case visibility")]
    roles = set(re.findall(r"`([^`]+)`", section)) - {"企业"}  # the enterprise uses its private link
    held = {r for u in DEMO_USERS for r in u.roles}
    assert roles <= held, f"roles without a demo user: {sorted(roles - held)}"
    with web_engine.session() as session:
        rows = {u.username: u for u in session.scalars(select(User))}
    for demo in DEMO_USERS:
        row = rows[demo.username]
        assert row.unit_code == demo.unit and set(row.role_names) == set(demo.roles)
        assert row.password_hash.startswith("scrypt:") and demo.password not in row.password_hash


def test_every_demo_user_can_log_in(web_app):
    from web.demo.users import DEMO_USERS

    for demo in DEMO_USERS[:3]:  # scrypt is slow on purpose; three are enough to show the table works
        client = web_app.test_client()
        assert login(client, demo.username, demo.password).status_code == 302


def test_cli_user_add_reads_password_from_stdin(web_db_url, monkeypatch):
    from web.cli import main

    monkeypatch.setenv("QIFU_DATABASE_URL", web_db_url)
    runner = CliRunner()
    result = runner.invoke(main, ["user", "add", "Clerk7", "--unit", "PA07", "--role", "综合受理板块",
                                  "--role", "代办服务板块", "--password-stdin"], input="long-enough-pw\n")
    assert result.exit_code == 0, result.output
    from engine import db

    with db.session_scope(web_db_url) as session:
        row = session.scalar(select(User).where(User.username == "clerk7"))
        assert row.unit_code == "PA07" and row.role_names == ["代办服务板块", "综合受理板块"]
        assert check_password_hash(row.password_hash, "long-enough-pw")
    again = runner.invoke(main, ["user", "add", "clerk7", "--unit", "PA07", "--role", "x", "--password-stdin"],
                          input="long-enough-pw\n")
    assert again.exit_code == 2 and "已存在" in again.output
    bad_unit = runner.invoke(main, ["user", "add", "clerk8", "--unit", "XX", "--role", "x", "--password-stdin"],
                             input="long-enough-pw\n")
    assert bad_unit.exit_code == 2 and "未知单位" in bad_unit.output
    short = runner.invoke(main, ["user", "add", "clerk9", "--unit", "PA07", "--role", "x", "--password-stdin"],
                          input="short\n")
    assert short.exit_code == 2 and "至少 8" in short.output


def test_password_change_ends_old_sessions(client, web_engine):
    from werkzeug.security import generate_password_hash

    login(client, "pa_accept")
    assert client.get("/tasks").status_code == 200
    with web_engine.session() as session:
        session.scalar(select(User).where(User.username == "pa_accept")).password_hash = \
            generate_password_hash("a-new-password")
    assert client.get("/tasks").status_code == 302
