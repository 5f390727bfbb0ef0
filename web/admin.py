"""Administration: every change an administrator makes — users, units and liaisons, API clients, the working-day
calendar — and the admin log (``admin_log``) that records each one with who and when.

The admin pages (:mod:`web.views.admin`) and the ``qifu`` command (``user``, ``unit``, ``api-client``,
``workdays``) call these functions, so a rule holds on both: the last active administrator cannot be disabled,
a liaison's phone is a phone number, a temporary password is shown once. A change of the application's own
tables is written in one transaction with its log row. A calendar change goes through the engine's calendar
service (a transaction of its own) and is logged right after it; the deadlines it moves are then recomputed
through the management service — each move a step in its case's history — and that is logged too.

Password reset: the administrator never chooses a password the user keeps. A reset (and a user created on the
page) gets a random temporary password, shown once to the administrator; every session of the user ends, and at
the next login the user must replace it before any other page opens (:mod:`web.views.account`).
"""

from __future__ import annotations

import getpass
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash

from engine.errors import NotFoundError, QifuError
from engine.management import RecomputeReport
from engine.process_engine import ProcessEngine
from engine.schedule_file import MAX_SCHEDULE_BYTES, Schedule, parse_schedule

from .models import AdminLog, User

ADMIN_ROLE = "管理员"
KINDS: dict[str, str] = {
    "user_created": "新建用户", "user_updated": "修改用户", "user_disabled": "停用用户", "user_enabled": "启用用户",
    "password_reset": "重置密码", "password_set": "设置密码", "unit_updated": "修改单位与联络员",
    "api_client_created": "新建接口客户端", "api_client_revoked": "停用接口客户端",
    "calendar_day": "修改工作日历", "calendar_import": "导入官方作息安排", "deadlines_recomputed": "重新计算期限",
    "briefing_published": "发布月度简报",  # by a supervisor (web/publishing.py), logged here with who and when
    "typical_case": "标记典型案例",  # a supervisor's pick for the 简报 (web/typical.py)
}
# The roles of docs/domain.md (candidate groups of the two diagrams) and the system's own; a site's N panels
# are typed in as further roles.
KNOWN_ROLES: tuple[str, ...] = (
    "管理员", "审计", "督办", "流程设计",
    "中心工作人员", "企服专班", "承办单位", "领导小组",
    "综合受理板块", "代办服务板块", "诉求服务板块", "企业综合服务办公室", "兜底服务板块",
    "招商服务板块", "规划建设服务板块", "经济发展服务板块",
)
MAX_ROLES = 20
MAX_ROLE_CHARS = 50
MAX_DISPLAY_NAME = 50
MAX_USERNAME = 100
MAX_API_CLIENT_NAME = 200
TEMPORARY_PASSWORD_CHARS = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789"  # nothing to misread
TEMPORARY_PASSWORD_LENGTH = 14
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")
_USERNAME = re.compile(r"^[\w.@-]+$")
_ROLE_SEPARATORS = re.compile(r"[\s,，、;；]+")


def cli_actor() -> str:
    """Who made a change with the ``qifu`` command: the operating-system account that ran it."""
    try:
        return f"cli:{getpass.getuser()}"[:MAX_USERNAME]
    except Exception:  # no user name in this environment (a container without passwd entry)
        return "cli"


def clean_text(value: str | None, what: str, *, max_chars: int, required: bool = False) -> str | None:
    """``value`` stripped, or None when empty; refuses control and invisible characters and overlong text."""
    text = (value or "").strip()
    if _CONTROL.search(text):
        raise QifuError(f"{what}含有控制字符或不可见字符")
    if not text:
        if required:
            raise QifuError(f"{what}不能为空")
        return None
    if len(text) > max_chars:
        raise QifuError(f"{what}过长（最多 {max_chars} 个字符，现有 {len(text)} 个）")
    return text


# --- the log ---------------------------------------------------------------------------------------------------
def record(session: Session, *, actor: str, kind: str, target: str, summary: str, now: datetime,
           details: Mapping[str, Any] | None = None) -> AdminLog:
    """One admin log row in the caller's transaction (never a password or a token in ``details``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown admin log kind {kind!r}")
    row = AdminLog(at=now, actor=(actor or "unknown")[:MAX_USERNAME], kind=kind, target=target[:200],
                   summary=summary[:1000], details_json=json.dumps(dict(details or {}), ensure_ascii=False,
                                                                 default=str, sort_keys=True))
    session.add(row)
    session.flush()
    return row


def _log(engine: ProcessEngine, **kwargs: Any) -> None:
    with engine.session() as session:
        record(session, now=engine.clock.now(), **kwargs)


# --- users -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UserInfo:
    id: int
    username: str
    display_name: str | None
    unit: str
    roles: list[str]
    active: bool
    must_change_password: bool

    @classmethod
    def of(cls, row: User) -> UserInfo:
        return cls(row.id, row.username, row.display_name, row.unit_code, row.role_names, bool(row.active),
                   bool(row.must_change_password))


def check_username(username: str) -> str:
    """The login name as stored (lower case), or a Chinese refusal."""
    from .auth import normalize

    name = normalize(username)
    if _CONTROL.search(name):
        raise QifuError("用户名含有控制字符或不可见字符")
    if len(name) < 2 or len(name) > MAX_USERNAME:
        raise QifuError(f"用户名应为 2–{MAX_USERNAME} 个字符")
    if not _USERNAME.match(name):
        raise QifuError("用户名只能含字母、数字和 _ . @ -（不能有空格）")
    return name


def check_roles(roles: Iterable[str]) -> list[str]:
    """The roles, each checked, without duplicates, sorted; at least one."""
    clean: set[str] = set()
    for raw in roles:
        for role in _ROLE_SEPARATORS.split(raw or ""):
            if not role:
                continue
            if _CONTROL.search(role):
                raise QifuError("角色名含有控制字符或不可见字符")
            if len(role) > MAX_ROLE_CHARS:
                raise QifuError(f"角色名过长（最多 {MAX_ROLE_CHARS} 个字符）：“{role[:20]}…”")
            clean.add(role)
    if not clean:
        raise QifuError("至少需要一个角色")
    if len(clean) > MAX_ROLES:
        raise QifuError(f"角色过多（最多 {MAX_ROLES} 个）")
    return sorted(clean)


def _unit_exists(session: Session, code: str) -> None:
    from handlers.models import OrgUnit

    if not code or session.scalar(select(OrgUnit.id).where(OrgUnit.code == code, OrgUnit.active.is_(True))) is None:
        raise QifuError(f"未知单位编码: {code[:40]}（请从列表中选择）")


def temporary_password() -> str:
    return "".join(secrets.choice(TEMPORARY_PASSWORD_CHARS) for _ in range(TEMPORARY_PASSWORD_LENGTH))


def _existing(session: Session, username: str) -> User:
    from .auth import find_user, normalize

    row = find_user(session, username)
    if row is None:
        raise NotFoundError(f"用户不存在: {normalize(username)[:MAX_USERNAME]}")
    return row


def _other_active_admins(session: Session, user: User) -> int:
    from .models import UserRole

    return session.scalar(select(func.count(User.id)).join(UserRole, UserRole.user_id == User.id)
                          .where(UserRole.role == ADMIN_ROLE, User.active.is_(True), User.id != user.id)) or 0


def _keeps_an_administrator(session: Session, user: User, *, active: bool, roles: list[str]) -> None:
    """Refuse a change that would leave no active administrator (nobody could open these pages again)."""
    was_admin = bool(user.active) and ADMIN_ROLE in user.role_names
    stays_admin = active and ADMIN_ROLE in roles
    if was_admin and not stays_admin and _other_active_admins(session, user) == 0:
        raise QifuError("不能停用最后一名启用的管理员，也不能取消其管理员角色：请先为另一名用户设置管理员角色")


def create_user(engine: ProcessEngine, *, username: str, unit: str, roles: Iterable[str], actor: str,
                display_name: str | None = None, password: str | None = None) -> tuple[UserInfo, str | None]:
    """Create a user. Without ``password`` the user gets a temporary one (returned, to be shown once) that must
    be replaced at the first login; with one (``qifu user add --password-stdin``) that password stands."""
    from .auth import add_user, find_user

    name = check_username(username)
    shown = clean_text(display_name, "姓名", max_chars=MAX_DISPLAY_NAME)
    clean_roles = check_roles(roles)
    temporary = temporary_password() if password is None else None
    with engine.session() as session:
        if find_user(session, name) is not None:
            raise QifuError(f"用户已存在: {name}")
        _unit_exists(session, unit)
        row = add_user(session, name, password if password is not None else temporary or "", unit=unit,
                       roles=clean_roles, display_name=shown, now=engine.clock.now())
        row.must_change_password = temporary is not None
        info = UserInfo.of(row)
        record(session, actor=actor, kind="user_created", target=name, now=engine.clock.now(),
               summary=f"新建用户 {name}（{shown or '未填姓名'}，单位 {unit}，角色 {'、'.join(clean_roles)}）",
               details={"display_name": shown, "unit": unit, "roles": clean_roles,
                        "temporary_password": temporary is not None})
    return info, temporary


def update_user(engine: ProcessEngine, username: str, *, actor: str, display_name: str | None = None,
                unit: str | None = None, roles: Iterable[str] | None = None) -> dict[str, Any]:
    """Change a user's name, unit or roles (None: unchanged). Returns what changed (empty: nothing did).

    A changed unit or role set takes effect on the user's next request (each request reloads the user)."""
    shown = clean_text(display_name, "姓名", max_chars=MAX_DISPLAY_NAME) if display_name is not None else None
    clean_roles = check_roles(roles) if roles is not None else None
    with engine.session() as session:
        row = _existing(session, username)
        before = {"display_name": row.display_name, "unit": row.unit_code, "roles": row.role_names}
        after = dict(before)
        if display_name is not None:
            after["display_name"] = shown
        if unit is not None and unit != row.unit_code:
            _unit_exists(session, unit)
            after["unit"] = unit
        if clean_roles is not None:
            after["roles"] = clean_roles
        changed = {k: {"from": before[k], "to": after[k]} for k in before if before[k] != after[k]}
        if not changed:
            return {}
        _keeps_an_administrator(session, row, active=bool(row.active), roles=after["roles"])
        from .models import UserRole

        row.display_name = after["display_name"]
        row.unit_code = after["unit"]
        if "roles" in changed:
            keep = {r.role: r for r in row.roles}
            row.roles = [keep.get(r) or UserRole(role=r) for r in after["roles"]]
        words = {"display_name": "姓名", "unit": "单位", "roles": "角色"}
        parts = [f"{words[k]} {_shown(v['from'])} → {_shown(v['to'])}" for k, v in changed.items()]
        record(session, actor=actor, kind="user_updated", target=row.username, now=engine.clock.now(),
               summary=f"修改用户 {row.username}：" + "；".join(parts), details=changed)
    return changed


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return "、".join(value) or "—"
    return str(value) if value else "—"


def set_active(engine: ProcessEngine, username: str, active: bool, *, actor: str) -> int | None:
    """Enable or disable a user; disabling ends every session at once. Returns the sessions ended, None when the
    user already was in that state (nothing changed, nothing logged)."""
    from .auth import set_active as set_user_active

    with engine.session() as session:
        row = _existing(session, username)
        if bool(row.active) == active:
            return None
        if not active and row.username == actor:
            raise QifuError("不能停用自己的账号")
        if not active:
            _keeps_an_administrator(session, row, active=False, roles=row.role_names)
        ended = set_user_active(session, row.username, active)
        record(session, actor=actor, kind="user_enabled" if active else "user_disabled", target=row.username,
               now=engine.clock.now(),
               summary=f"{'启用' if active else '停用'}用户 {row.username}" + ("" if active else f"，结束其 {ended} 个登录会话"),
               details={"sessions_ended": ended})
    return ended


def reset_password(engine: ProcessEngine, username: str, *, actor: str) -> tuple[str, int]:
    """A temporary password (returned once, never stored in clear), every session ended, a change forced at the
    next login. Returns (temporary password, sessions ended)."""
    from .auth import set_password

    temporary = temporary_password()
    with engine.session() as session:
        row = _existing(session, username)
        if row.username == actor:
            raise QifuError("不能重置自己的密码：请在“修改密码”页修改")
        ended = set_password(session, row.username, temporary)
        row.must_change_password = True
        record(session, actor=actor, kind="password_reset", target=row.username, now=engine.clock.now(),
               summary=f"重置用户 {row.username} 的密码（临时密码，下次登录须修改），结束其 {ended} 个登录会话",
               details={"sessions_ended": ended})
    return temporary, ended


def set_password(engine: ProcessEngine, username: str, password: str, *, actor: str) -> int:
    """``qifu user passwd``: the operator sets a password (read from stdin); every session ends."""
    from .auth import set_password as set_user_password

    with engine.session() as session:
        row = _existing(session, username)
        ended = set_user_password(session, row.username, password)
        row.must_change_password = False
        record(session, actor=actor, kind="password_set", target=row.username, now=engine.clock.now(),
               summary=f"设置用户 {row.username} 的密码，结束其 {ended} 个登录会话", details={"sessions_ended": ended})
    return ended


def change_own_password(engine: ProcessEngine, user_id: int, current: str, new: str, confirm: str) -> int:
    """A user replaces their own password (a temporary one, or any): the current one is checked, the new one
    must differ and pass the rules; every session of the user ends (they log in again with it)."""
    from .auth import check_password_rules
    from .auth import set_password as set_user_password

    if new != confirm:
        raise QifuError("两次输入的新密码不一致")
    if len(new) > 200:
        raise QifuError("新密码过长（最多 200 个字符）")
    check_password_rules(new)
    with engine.session() as session:
        row = session.get(User, user_id)
        if row is None or not row.active:
            raise NotFoundError("用户不存在或已停用")
        if not check_password_hash(row.password_hash, current or ""):
            raise QifuError("当前密码不正确")
        if new == current:
            raise QifuError("新密码不能与当前密码相同")
        ended = set_user_password(session, row.username, new)
        row.must_change_password = False
    return ended


# --- API clients -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ApiClientInfo:
    id: int
    name: str
    channels: list[str]
    process: str
    active: bool
    created_at: datetime


def create_api_client(engine: ProcessEngine, name: str, channels: Iterable[str], *, actor: str,
                      process_key: str = "fenghua_one_place") -> tuple[ApiClientInfo, str]:
    """A client of the intake API and its bearer token — returned once; only its digest is stored."""
    from .views.api import create_client

    clean = clean_text(name, "客户端名称", max_chars=MAX_API_CLIENT_NAME, required=True) or ""
    if not process_key or engine.repository.latest(process_key) is None:
        raise QifuError(f"未部署的流程: {process_key[:100]}")
    with engine.session() as session:
        client, token = create_client(session, clean, list(channels), engine.clock.now(), process_key)
        info = ApiClientInfo(client.id, client.name, client.channel_list, client.process_key, True, client.created_at)
        record(session, actor=actor, kind="api_client_created", target=client.name, now=engine.clock.now(),
               summary=f"新建接口客户端 {client.name}（渠道 {'、'.join(info.channels)}，流程 {process_key}）",
               details={"channels": info.channels, "process": process_key})
    return info, token


def revoke_api_client(engine: ProcessEngine, *, actor: str, name: str | None = None,
                      client_id: int | None = None) -> ApiClientInfo:
    """Disable a client by name or id: its token stops working at once (a new client gets a new token)."""
    from .intake_models import ApiClient

    with engine.session() as session:
        if client_id is not None:
            client = session.get(ApiClient, client_id)
        else:
            client = session.scalar(select(ApiClient).where(ApiClient.name == (name or "")))
        if client is None:
            raise NotFoundError(f"接口客户端不存在: {(name or str(client_id))[:MAX_API_CLIENT_NAME]}")
        if not client.active:
            raise QifuError(f"接口客户端 {client.name} 已停用")
        client.active = False
        record(session, actor=actor, kind="api_client_revoked", target=client.name, now=engine.clock.now(),
               summary=f"停用接口客户端 {client.name}：其访问令牌立即失效", details={"channels": client.channel_list})
        return ApiClientInfo(client.id, client.name, client.channel_list, client.process_key, False,
                             client.created_at)


# --- units and liaisons ----------------------------------------------------------------------------------------
UNIT_FIELD_NAMES = {"name": "单位名称", "phone": "单位电话", "address": "单位地址", "kind": "单位类型",
                    "liaison_name": "联络员", "liaison_phone": "联络员电话"}


def edit_unit(engine: ProcessEngine, code: str, *, actor: str, **values: str | None) -> dict[str, Any]:
    """Edit a unit (fields of :data:`UNIT_FIELD_NAMES`; None: unchanged, empty text clears). Returns what changed."""
    from handlers import reference
    from handlers.models import OrgUnit

    unknown = set(values) - set(UNIT_FIELD_NAMES)
    if unknown:
        raise ValueError(f"unknown unit fields {sorted(unknown)}")
    with engine.session() as session:
        row = session.scalar(select(OrgUnit).where(OrgUnit.code == code))
        if row is None:
            raise NotFoundError(f"未知的单位编码“{code[:40]}”")
        before = {f: getattr(row, f) for f in UNIT_FIELD_NAMES}
        reference.set_unit(session, code, **{k: v for k, v in values.items() if v is not None})
        after = {f: getattr(row, f) for f in UNIT_FIELD_NAMES}
        changed = {f: {"from": before[f], "to": after[f]} for f in UNIT_FIELD_NAMES if before[f] != after[f]}
        if changed:
            parts = [f"{UNIT_FIELD_NAMES[f]} {_shown(v['from'])} → {_shown(v['to'])}" for f, v in changed.items()]
            record(session, actor=actor, kind="unit_updated", target=code, now=engine.clock.now(),
                   summary=f"修改单位 {code} {row.name}：" + "；".join(parts), details=changed)
    return changed


# --- the working-day calendar ----------------------------------------------------------------------------------
DAY_KINDS = {"work": True, "rest": False}


def parse_day(text: str | None) -> date:
    """A date typed as YYYY-MM-DD (the year within what the calendar holds)."""
    from engine.calendar import MAX_YEAR, MIN_YEAR

    value = (text or "").strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise QifuError(f"日期格式应为 YYYY-MM-DD（如 2026-10-10）：“{value[:20]}”")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise QifuError(f"日期无效：“{value}”") from None
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise QifuError(f"年份应在 {MIN_YEAR}–{MAX_YEAR} 之间：{value}")
    return day


def day_label(day: date, working: bool) -> str:
    """What a day becomes, in the clerks' words: 调休上班 (a weekend worked), 工作日, 放假, 休息日."""
    weekend = day.weekday() >= 5
    if working:
        return "调休上班" if weekend else "工作日"
    return "休息日" if weekend else "放假（休息）"


@dataclass
class CalendarPreview:
    """What a calendar change would do: the day(s) it sets and the deadlines recompute would move."""

    report: RecomputeReport
    everything: bool
    day: date | None = None
    working: bool | None = None
    was_working: bool | None = None
    schedule: Schedule | None = None
    replaces: bool = False  # the year already had an official schedule


@dataclass
class CalendarApplied:
    report: RecomputeReport
    official: bool
    import_result: Any = None  # engine.calendar.ImportResult for an import
    notes: list[str] = field(default_factory=list)


def preview_day(engine: ProcessEngine, day: date, working: bool) -> CalendarPreview:
    """Dry run of :func:`apply_day`: every waiting deadline is checked (nothing records which days a deadline
    counted), as the apply will."""
    was = engine.calendar.snapshot().is_workday(day)
    report = engine.management.preview_recompute({day: working}, everything=True)
    return CalendarPreview(report, True, day=day, working=working, was_working=was)


def apply_day(engine: ProcessEngine, day: date, working: bool, note: str | None, *, actor: str,
              recompute: bool = True) -> CalendarApplied:
    """Set one day (source ``admin``), log it, then recompute every waiting deadline (unless ``recompute`` is
    False: ``qifu workdays set`` leaves that to ``qifu workdays recompute --all``)."""
    clean_note = clean_text(note, "说明", max_chars=100)
    official = engine.calendar.set_day(day, working, clean_note)
    _log(engine, actor=actor, kind="calendar_day", target=day.isoformat(),
         summary=f"{day.isoformat()} 设为{day_label(day, working)}" + (f"（{clean_note}）" if clean_note else ""),
         details={"workday": working, "note": clean_note, "official_year": official})
    report = RecomputeReport()
    if recompute:
        report = recompute_deadlines(engine, reason=f"工作日历修改：{day.isoformat()} 设为{day_label(day, working)}",
                                     actor=actor, everything=True)
    return CalendarApplied(report, official)


def read_schedule_upload(data: bytes, filename: str | None) -> Schedule:
    """An uploaded schedule file: the limits and encoding of ``qifu workdays import``, then the same parser."""
    name = schedule_filename(filename)
    if not data:
        raise QifuError(f"作息安排文件 {name} 为空，未做任何修改")
    if len(data) > MAX_SCHEDULE_BYTES:
        raise QifuError(f"作息安排文件 {name} 过大（上限 {MAX_SCHEDULE_BYTES // 1024} KB），不像一年的作息安排，未做任何修改")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise QifuError(f"作息安排文件 {name} 不是 UTF-8 编码（请用 UTF-8 另存），未做任何修改") from None
    if "\x00" in text:
        raise QifuError(f"作息安排文件 {name} 不是文本文件，未做任何修改")
    return parse_schedule(text, name=name)


def schedule_filename(filename: str | None) -> str:
    """The uploaded file's own name (no directories, no control characters), for messages and the source."""
    base = re.split(r"[\\/]", filename or "")[-1]
    base = _CONTROL.sub("", base).strip()[:100]
    return base or "schedule.csv"


def preview_import(engine: ProcessEngine, schedule: Schedule) -> CalendarPreview:
    """Dry run of :func:`apply_import`: the year's days as the file gives them, the year official; provisional
    deadlines are checked, every waiting one if the year already had an official schedule (as the import will)."""
    replaces = schedule.year in engine.calendar.snapshot().official_years
    days = {r["day"]: r["is_workday"] for r in schedule.rows("preview")}
    report = engine.management.preview_recompute(days, official_years=[schedule.year], everything=replaces)
    return CalendarPreview(report, replaces, schedule=schedule, replaces=replaces)


def apply_import(engine: ProcessEngine, schedule: Schedule, *, source: str, actor: str) -> CalendarApplied:
    """Load the official schedule (one transaction), log it, then recompute the deadlines it may move."""
    result = engine.calendar.load_year(schedule, source=source)
    _log(engine, actor=actor, kind="calendar_import", target=str(result.year),
         summary=f"载入 {result.year} 年官方作息安排（来源 {result.source}）：放假 {result.holidays} 天、调休上班 "
                 f"{result.makeup_days} 天" + (f"，替换原有安排（{result.replaced}）" if result.replaced else ""),
         details={"source": result.source, "rest_days": result.rest_days, "holidays": result.holidays,
                  "makeup_days": result.makeup_days, "replaced": result.replaced})
    report = recompute_deadlines(engine, reason=f"载入 {result.year} 年官方作息安排 ({result.source})", actor=actor,
                                 everything=result.replaced is not None)
    return CalendarApplied(report, True, import_result=result)


def recompute_deadlines(engine: ProcessEngine, *, reason: str, actor: str, everything: bool) -> RecomputeReport:
    """The management service's recompute (each move a step in the case history), logged with its counts."""
    report = engine.management.recompute_deadlines(reason=reason, actor=actor, everything=everything)
    moved = report.moved
    _log(engine, actor=actor, kind="deadlines_recomputed", target="全部等待中的期限" if everything else "暂定期限",
         summary=f"{reason}：检查 {report.checked} 个期限，调整 {len(moved)} 个"
                 + (f"，{len(report.failures)} 个未能重算" if report.failures else ""),
         details={"checked": report.checked, "moved": len(moved), "changes": len(report.changes),
                  "failures": [f["timer"] for f in report.failures][:100],
                  "cases": sorted({c["business_key"] for c in moved})[:100]})
    return report


def missing_next_year(engine: ProcessEngine, today: date) -> int | None:
    """From October on, next year while its official schedule is not loaded (deadlines into it are provisional)."""
    if today.month < 10:
        return None
    year = today.year + 1
    return None if year in engine.calendar.snapshot().official_years else year
