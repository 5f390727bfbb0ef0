"""管理 (administration) pages for the 管理员 role: users, units and liaisons, API clients, the working-day
calendar and the admin log; the incidents page (:mod:`web.views.incidents`) is linked from the index.

Every change is a POST with the app's CSRF token and goes through :mod:`web.admin` — the same functions the
``qifu`` command calls — which checks it and records it in the admin log with who and when. Bad input gets a
Chinese message on the form (status 400) and changes nothing. A temporary password or an API token is shown
once, in the response to the POST (``Cache-Control: no-store``), never stored in clear or put in the session.

A calendar change is previewed first: the preview runs the management service's recompute as a dry run
(:meth:`engine.management.ManagementService.preview_recompute`) and lists the open deadlines that would move;
the confirmation form carries the change (for an import, the file's text) so applying re-checks it and
changes exactly what was previewed, then lists what actually moved. Anyone else gets 403, a visitor who is
not logged in the login page.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import HiddenField, RadioField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length

from engine.clock import SHANGHAI
from engine.errors import NotFoundError, QifuError
from engine.schedule_file import MAX_SCHEDULE_BYTES, import_source

from .. import admin
from ..forms import ActionForm
from ..read import admin as read
from .common import engine, now, page_number

bp = Blueprint("admin", __name__, url_prefix="/admin")

REGIONS = {"pan_an": "磐安", "fenghua": "奉化"}
USER_STATUSES = {"active": "启用", "disabled": "停用"}


def may_administer(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False) and admin.ADMIN_ROLE in user.roles)


def calendar_warning() -> str | None:
    """From October on, while next year's official schedule is missing: what the banner says."""
    year = admin.missing_next_year(engine(), now().astimezone(SHANGHAI).date())
    if year is None:
        return None
    return (f"尚未载入 {year} 年的官方放假安排：涉及 {year} 年的期限按备用规则计算，标为“暂定”。"
            f"国务院办公厅通知发布后，请在“工作日历”页导入。")


@bp.app_context_processor
def _nav() -> dict[str, Any]:
    """The nav link and the calendar banner, for administrators only (evaluated when the template asks)."""
    return {"may_administer": lambda: may_administer(current_user),
            "admin_calendar_warning": lambda: calendar_warning() if may_administer(current_user) else None}


@bp.before_request
def _only_administrators() -> Any:
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    if not may_administer(current_user):
        abort(403)
    return None


def _once(html: str) -> Any:
    """A page with a secret shown once: never cached, never kept in the history's back-forward cache."""
    response = make_response(html)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _bad_request(message: str) -> tuple[str, int]:
    return render_template("error.html", status=400, title="请求无效", message=message), 400


def _choice(name: str, allowed: dict[str, str] | list[str], what: str) -> str | None:
    value = (request.args.get(name) or "").strip()
    if not value:
        return None
    if value not in allowed:
        raise QifuError(f"未知的{what}“{value[:20]}”")
    return value


def _actor() -> str:
    return current_user.username


# --- index ------------------------------------------------------------------------------------------------------
@bp.get("/")
def index() -> Any:
    return render_template("admin/index.html", open_incidents=engine().management.count_open_incidents(),
                           waiting=engine().management.count_waiting(),
                           provisional=engine().management.count_waiting(provisional=True))


# --- users ------------------------------------------------------------------------------------------------------
class UserForm(FlaskForm):
    username = StringField("用户名（登录名）", validators=[InputRequired("请填写用户名"),
                                                  Length(max=admin.MAX_USERNAME, message="用户名最长 100 个字符")])
    display_name = StringField("姓名", validators=[InputRequired("请填写姓名"),
                                                 Length(max=admin.MAX_DISPLAY_NAME, message="姓名最长 50 个字符")])
    unit = SelectField("单位", validate_choice=False, validators=[InputRequired("请选择单位")])
    roles = SelectMultipleField("角色", validate_choice=False)
    other_roles = StringField("其他角色（多个用顿号或逗号分隔，如本站的 N 个服务板块）",
                              validators=[Length(max=500, message="其他角色最长 500 个字符")])


class EditUserForm(UserForm):
    username = None  # the login name stays: it is what the history records


def _user_form_choices(form: UserForm) -> dict[str, Any]:
    with engine().read() as session:
        units = read.unit_choices(session)
        roles = read.role_choices(session)
    form.unit.choices = [("", "请选择")] + [(u.code, f"{u.name}（{u.code}）") for u in units]
    return {"units": units, "roles": roles}


def _roles(form: UserForm) -> list[str]:
    return [*(form.roles.data or []), form.other_roles.data or ""]


@bp.get("/users")
def users() -> Any:
    try:
        filters = read.UserFilters(q=(request.args.get("q") or "").strip()[:100] or None,
                                   unit=(request.args.get("unit") or "").strip()[:40] or None,
                                   role=(request.args.get("role") or "").strip()[:50] or None,
                                   status=_choice("status", USER_STATUSES, "状态"))
    except QifuError as exc:
        return _bad_request(exc.message)
    with engine().read() as session:
        page = read.users_page(session, filters, page_number())
        units = read.unit_choices(session)
        roles = read.role_choices(session)
    args = {k: v for k, v in filters.__dict__.items() if v}
    return render_template("admin/users.html", page=page, filters=filters, args=args, units=units, roles=roles,
                           unit_names={u.code: u.name for u in units}, statuses=USER_STATUSES)


@bp.route("/users/new", methods=["GET", "POST"])
def new_user() -> Any:
    form = UserForm()
    choices = _user_form_choices(form)
    error, status = None, 200
    if form.validate_on_submit():
        try:
            info, temporary = admin.create_user(engine(), username=form.username.data or "",
                                                display_name=form.display_name.data, unit=form.unit.data or "",
                                                roles=_roles(form), actor=_actor())
        except QifuError as exc:
            error, status = exc.message, 400
        else:
            return _once(render_template("admin/password.html", user=info, temporary=temporary, created=True))
    elif form.is_submitted():
        status = 400
    return render_template("admin/user_form.html", form=form, error=error, user=None, **choices), status


def _user_or_404(user_id: int) -> Any:
    with engine().read() as session:
        info = read.user(session, user_id)
    if info is None:
        abort(404)
    return info


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
def edit_user(user_id: int) -> Any:
    info = _user_or_404(user_id)
    form = EditUserForm(data={"display_name": info.display_name, "unit": info.unit,
                              "roles": [r for r in info.roles]} if request.method == "GET" else None)
    choices = _user_form_choices(form)
    if request.method == "GET":  # roles outside the known list go into the free-text field
        form.roles.data = [r for r in info.roles if r in choices["roles"]]
        form.other_roles.data = "、".join(r for r in info.roles if r not in choices["roles"])
    error, status = None, 200
    if form.validate_on_submit():
        try:
            changed = admin.update_user(engine(), info.username, display_name=form.display_name.data,
                                        unit=form.unit.data or "", roles=_roles(form), actor=_actor())
        except QifuError as exc:
            error, status = exc.message, 400
        else:
            flash(f"已保存用户 {info.username}" if changed else f"用户 {info.username} 没有修改")
            return redirect(url_for("admin.edit_user", user_id=user_id))
    elif form.is_submitted():
        status = 400
    return render_template("admin/user_form.html", form=form, error=error, user=info, action=ActionForm(),
                           **choices), status


@bp.post("/users/<int:user_id>/disable")
def disable_user(user_id: int) -> Any:
    return _set_active(user_id, False)


@bp.post("/users/<int:user_id>/enable")
def enable_user(user_id: int) -> Any:
    return _set_active(user_id, True)


def _set_active(user_id: int, active: bool) -> Any:
    info = _user_or_404(user_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        ended = admin.set_active(engine(), info.username, active, actor=_actor())
    except QifuError as exc:
        flash(f"未修改：{exc.message}")
    else:
        if ended is None:
            flash(f"用户 {info.username} 已是{'启用' if active else '停用'}状态")
        else:
            flash(f"已{'启用' if active else '停用'}用户 {info.username}" + ("" if active else f"，结束其 {ended} 个登录会话"))
    return redirect(url_for("admin.edit_user", user_id=user_id))


@bp.post("/users/<int:user_id>/reset-password")
def reset_password(user_id: int) -> Any:
    info = _user_or_404(user_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        temporary, ended = admin.reset_password(engine(), info.username, actor=_actor())
    except QifuError as exc:
        flash(f"未重置：{exc.message}")
        return redirect(url_for("admin.edit_user", user_id=user_id))
    return _once(render_template("admin/password.html", user=info, temporary=temporary, created=False, ended=ended))


# --- units and liaisons -----------------------------------------------------------------------------------------
class UnitForm(FlaskForm):
    name = StringField("单位名称", validators=[InputRequired("请填写单位名称"), Length(max=100, message="单位名称最长 100 个字")])
    phone = StringField("单位电话", validators=[Length(max=50, message="单位电话最长 50 个字符")])
    address = StringField("单位地址", validators=[Length(max=300, message="单位地址最长 300 个字")])
    liaison_name = StringField("联络员（可填岗位，如“办公室联络员”）",
                               validators=[Length(max=50, message="联络员最长 50 个字")])
    liaison_phone = StringField("联络员电话", validators=[Length(max=50, message="联络员电话最长 50 个字符")])


@bp.get("/units")
def units() -> Any:
    try:
        region = _choice("region", REGIONS, "区域")
    except QifuError as exc:
        return _bad_request(exc.message)
    q = (request.args.get("q") or "").strip()[:100] or None
    with engine().read() as session:
        page = read.units_page(session, region=region, q=q, page=page_number())
    args = {k: v for k, v in (("region", region), ("q", q)) if v}
    return render_template("admin/units.html", page=page, args=args, region=region or "", q=q or "",
                           regions=REGIONS)


@bp.route("/units/<code>", methods=["GET", "POST"])
def edit_unit(code: str) -> Any:
    if len(code) > 40:
        abort(404)
    with engine().read() as session:
        row = read.unit(session, code)
    if row is None:
        abort(404)
    form = UnitForm(obj=row if request.method == "GET" else None)
    error, status = None, 200
    if form.validate_on_submit():
        try:
            changed = admin.edit_unit(engine(), code, actor=_actor(), name=form.name.data or "",
                                      phone=form.phone.data or "", address=form.address.data or "",
                                      liaison_name=form.liaison_name.data or "",
                                      liaison_phone=form.liaison_phone.data or "")
        except QifuError as exc:
            error, status = exc.message, 400
        else:
            flash(f"已保存 {code}：" + "、".join(admin.UNIT_FIELD_NAMES[f] for f in changed) if changed
                  else f"{code} 没有修改")
            return redirect(url_for("admin.edit_unit", code=code))
    elif form.is_submitted():
        status = 400
    return render_template("admin/unit_form.html", form=form, unit=row, error=error, regions=REGIONS), status


# --- API clients ------------------------------------------------------------------------------------------------
class ApiClientForm(FlaskForm):
    name = StringField("名称（对接的系统）", validators=[InputRequired("请填写名称"),
                                                 Length(max=200, message="名称最长 200 个字符")])
    channels = SelectMultipleField("可提交的渠道", validate_choice=False)
    process_key = SelectField("案件流程", validate_choice=False, validators=[InputRequired("请选择流程")])


def _client_form_choices(form: ApiClientForm) -> list[tuple[str, str]]:
    with engine().read() as session:
        channels = read.online_channels(session)
    form.process_key.choices = [(p.process_key, f"{p.name or p.process_key}（{p.process_key}）")
                            for p in engine().repository.processes()]
    return channels


def _api_clients_page(form: ApiClientForm, error: str | None = None, status: int = 200) -> Any:
    channels = _client_form_choices(form)
    with engine().read() as session:
        page = read.api_clients_page(session, page_number())
    return render_template("admin/api_clients.html", form=form, page=page, channels=channels, error=error,
                           channel_names=dict(channels), action=ActionForm()), status


@bp.get("/api-clients")
def api_clients() -> Any:
    form = ApiClientForm(data={"process_key": "fenghua_one_place"})
    return _api_clients_page(form)


@bp.post("/api-clients")
def create_api_client() -> Any:
    form = ApiClientForm()
    _client_form_choices(form)
    if not form.validate_on_submit():
        return _api_clients_page(form, status=400)
    try:
        client, token = admin.create_api_client(engine(), form.name.data or "", form.channels.data or [],
                                                process_key=form.process_key.data or "", actor=_actor())
    except QifuError as exc:
        return _api_clients_page(form, error=exc.message, status=400)
    return _once(render_template("admin/api_client_token.html", client=client, token=token))


@bp.post("/api-clients/<int:client_id>/revoke")
def revoke_api_client(client_id: int) -> Any:
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        client = admin.revoke_api_client(engine(), client_id=client_id, actor=_actor())
    except NotFoundError:
        abort(404)
    except QifuError as exc:
        flash(f"未停用：{exc.message}")
    else:
        flash(f"已停用接口客户端 {client.name}：其访问令牌立即失效")
    return redirect(url_for("admin.api_clients"))


# --- the working-day calendar -----------------------------------------------------------------------------------
DAY_KIND_CHOICES = [("work", "上班（工作日；周末即调休上班）"), ("rest", "休息（放假）")]


class DayForm(FlaskForm):
    day = StringField("日期", validators=[InputRequired("请填写日期")], render_kw={"type": "date"})
    kind = RadioField("设为", choices=DAY_KIND_CHOICES, validate_choice=False,
                      validators=[InputRequired("请选择上班或休息")])
    note = StringField("说明（如“国庆节调休上班”）", validators=[Length(max=100, message="说明最长 100 个字")])


class ImportForm(FlaskForm):
    file = FileField("官方作息安排文件（UTF-8 文本，格式见 docs/calendar.md）")


class ApplyImportForm(FlaskForm):
    content = TextAreaField(validators=[InputRequired("缺少文件内容"),
                                        Length(max=MAX_SCHEDULE_BYTES, message="文件内容过大")])
    filename = HiddenField(validators=[Length(max=200)])


def _year(default: int) -> int:
    raw = (request.args.get("year") or "").strip()
    if not raw:
        return default
    if not re.fullmatch(r"\d{4}", raw) or not 2000 <= int(raw) <= 2100:
        raise QifuError(f"年份应为 2000–2100 之间的四位数字：“{raw[:10]}”")
    return int(raw)


def _calendar_page(day_form: DayForm, import_form: ImportForm, *, year: int, error: str | None = None,
                   import_error: str | None = None, status: int = 200) -> Any:
    view = read.year_view(engine(), year)
    return render_template("admin/calendar.html", view=view, day_form=day_form, import_form=import_form,
                           error=error, import_error=import_error, weekdays=read.WEEKDAYS,
                           kinds=read.DAY_KIND_LABELS, today=now().astimezone(SHANGHAI).date(),
                           provisional=engine().management.count_waiting(provisional=True)), status


@bp.get("/calendar")
def calendar() -> Any:
    today = now().astimezone(SHANGHAI).date()
    try:
        year = _year(today.year)
        picked = admin.parse_day(request.args["day"]) if request.args.get("day") else None
    except QifuError as exc:
        return _bad_request(exc.message)
    day_form = DayForm(data={"day": picked.isoformat()} if picked else None)
    if picked is not None:
        was = engine().calendar.snapshot().is_workday(picked)
        day_form.kind.data = "rest" if was else "work"  # the change one would make: the other kind
        year = picked.year
    return _calendar_page(day_form, ImportForm(), year=year)


def _day_change(form: DayForm) -> tuple[date, bool, str | None]:
    day = admin.parse_day(form.day.data)
    if form.kind.data not in admin.DAY_KINDS:
        raise QifuError("请选择上班或休息")
    working = admin.DAY_KINDS[form.kind.data]
    note = admin.clean_text(form.note.data, "说明", max_chars=100)
    return day, working, note


@bp.post("/calendar/day/preview")
def preview_day() -> Any:
    form = DayForm()
    year = now().astimezone(SHANGHAI).year
    if not form.validate_on_submit():
        return _calendar_page(form, ImportForm(), year=year, status=400)
    try:
        day, working, note = _day_change(form)
        if engine().calendar.snapshot().is_workday(day) == working and not note:
            raise QifuError(f"{day.isoformat()} 已经是{'工作日' if working else '休息日'}，无需修改")
    except QifuError as exc:
        return _calendar_page(form, ImportForm(), year=year, error=exc.message, status=400)
    preview = admin.preview_day(engine(), day, working)
    return render_template("admin/calendar_preview.html", preview=preview, form=form, kind="day",
                           label=admin.day_label(day, working), note=note,
                           changes=read.describe_changes(engine(), preview.report.changes),
                           counts=read.summary_counts(preview.report.changes), listed=read.MAX_LISTED)


@bp.post("/calendar/day/apply")
def apply_day() -> Any:
    form = DayForm()
    year = now().astimezone(SHANGHAI).year
    if not form.validate_on_submit():
        return _calendar_page(form, ImportForm(), year=year, status=400)
    try:
        day, working, note = _day_change(form)
    except QifuError as exc:
        return _calendar_page(form, ImportForm(), year=year, error=exc.message, status=400)
    applied = admin.apply_day(engine(), day, working, note, actor=_actor())
    return render_template("admin/calendar_applied.html", applied=applied, kind="day", day=day,
                           label=admin.day_label(day, working), note=note,
                           changes=read.describe_changes(engine(), applied.report.changes),
                           counts=read.summary_counts(applied.report.changes), listed=read.MAX_LISTED)


@bp.post("/calendar/import/preview")
def preview_import() -> Any:
    form = ImportForm()
    year = now().astimezone(SHANGHAI).year
    upload = form.file.data if form.validate_on_submit() else None
    if upload is None or not getattr(upload, "filename", None):
        return _calendar_page(DayForm(formdata=None), form, year=year, import_error="请选择要导入的作息安排文件",
                              status=400)
    data = upload.stream.read(MAX_SCHEDULE_BYTES + 1)
    try:
        schedule = admin.read_schedule_upload(data, upload.filename)
    except QifuError as exc:
        return _calendar_page(DayForm(formdata=None), form, year=year, import_error=exc.message, status=400)
    name = admin.schedule_filename(upload.filename)
    preview = admin.preview_import(engine(), schedule)
    apply_form = ApplyImportForm(formdata=None, data={"content": data.decode("utf-8-sig"), "filename": name})
    return render_template("admin/calendar_preview.html", preview=preview, form=apply_form, kind="import",
                           filename=name, changes=read.describe_changes(engine(), preview.report.changes),
                           counts=read.summary_counts(preview.report.changes), listed=read.MAX_LISTED)


@bp.post("/calendar/import/apply")
def apply_import() -> Any:
    form = ApplyImportForm()
    year = now().astimezone(SHANGHAI).year
    if not form.validate_on_submit():
        return _calendar_page(DayForm(formdata=None), ImportForm(formdata=None), year=year, status=400,
                              import_error="；".join(e for errors in form.errors.values() for e in errors))
    name = admin.schedule_filename(form.filename.data)
    try:
        schedule = admin.read_schedule_upload((form.content.data or "").encode("utf-8"), name)
    except QifuError as exc:
        return _calendar_page(DayForm(formdata=None), ImportForm(formdata=None), year=year,
                              import_error=exc.message, status=400)
    applied = admin.apply_import(engine(), schedule, source=import_source(name), actor=_actor())
    return render_template("admin/calendar_applied.html", applied=applied, kind="import", filename=name,
                           changes=read.describe_changes(engine(), applied.report.changes),
                           counts=read.summary_counts(applied.report.changes), listed=read.MAX_LISTED)


# --- the admin log ----------------------------------------------------------------------------------------------
@bp.get("/log")
def log() -> Any:
    actor = (request.args.get("actor") or "").strip()[:100] or None
    try:
        kind = _choice("kind", admin.KINDS, "类型")
    except QifuError as exc:
        return _bad_request(exc.message)
    with engine().read() as session:
        page = read.log_page(session, actor=actor, kind=kind, page=page_number())
        actors = read.log_actors(session)
    args = {k: v for k, v in (("actor", actor), ("kind", kind)) if v}
    return render_template("admin/log.html", page=page, args=args, actor=actor or "", kind=kind or "",
                           actors=actors, kinds=admin.KINDS)
