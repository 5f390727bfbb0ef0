"""The clerk's intake form (受理登记): 综合受理板块 at a Pan'an station, 中心工作人员 at the Fenghua centre.

One window (PA-2): whatever the channel — an enterprise visit, a walk-in, the 8718 window, a hotline call —
the clerk types the problem in here; the form offers the channels and categories of the clerk's own region
(reference data, FH-1/FH-2, PA-1) and only the units the clerk may register for (a station's clerk: their own
station; the select refuses any other value server-side), so every case registered is one the clerk can see.
The fields go to :func:`handlers.intake.submit_case`, the one way a case starts. Field errors come back in
Chinese next to the field and nothing is saved.

The enterprise's private tracking link is shown to the clerk once (to read out or send to the enterprise);
only its hash is stored.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from engine.errors import QifuError

from ..links import external_url
from ..scope import sees_region
from .public import ChineseForm, category_choices, choice, show_intake_errors

bp = Blueprint("intake", __name__)

INTAKE_ROLES = {"pan_an": "综合受理板块", "fenghua": "中心工作人员"}
PROCESS_OF_REGION = {"pan_an": "pan_an_station", "fenghua": "fenghua_one_place"}
INTAKE_UNIT_KINDS = {"pan_an": ("station", "window", "county_window"), "fenghua": ("centre",)}
FIELDS = ("unit", "channel", "category", "enterprise_name", "credit_code", "contact_name", "contact_phone",
          "contact_id_number", "title", "description")


class IntakeForm(ChineseForm):
    unit = SelectField("受理站点（窗口）", validators=[DataRequired("请选择受理站点（窗口）")])
    channel = SelectField("受理渠道", validators=[DataRequired("请选择受理渠道")])
    category = SelectField("问题分类", validators=[Optional()])
    enterprise_name = StringField("企业名称", validators=[DataRequired("请填写企业名称"), Length(max=100)])
    credit_code = StringField("统一社会信用代码", validators=[Optional(), Length(max=18)])
    contact_name = StringField("联系人", validators=[DataRequired("请填写联系人"), Length(max=50)])
    contact_phone = StringField("联系电话", validators=[DataRequired("请填写联系电话"), Length(max=20)])
    contact_id_number = StringField("联系人身份证号", validators=[Optional(), Length(max=18)])
    title = StringField("标题", validators=[Optional(), Length(max=100)])
    description = TextAreaField("问题描述", validators=[DataRequired("请填写问题描述"), Length(max=2000)])


def may_register(user: Any) -> bool:
    """Whether ``user`` holds the intake role of their region (综合受理板块 / 中心工作人员)."""
    role = INTAKE_ROLES.get(getattr(user, "region", None) or "")
    return role is not None and role in getattr(user, "roles", ())


@bp.app_context_processor
def _nav() -> dict[str, Any]:
    """Lets the base template show the 受理登记 link only to those who may register a case."""
    return {"may_register": lambda: may_register(current_user)}


def intake_region() -> str:
    """The region whose cases the current user may register, or 403."""
    region = getattr(current_user, "region", None)
    role = INTAKE_ROLES.get(region or "")
    if role is None or role not in current_user.roles:
        abort(403)
    return region


def _choices(form: IntakeForm, region: str) -> None:
    from handlers.models import Channel, OrgUnit

    engine = current_app.extensions["qifu_engine"]
    with engine.session() as db:
        query = select(OrgUnit).where(OrgUnit.region == region, OrgUnit.active.is_(True),
                                      OrgUnit.kind.in_(INTAKE_UNIT_KINDS[region]))
        if not sees_region(current_user):  # a station's clerk registers for their own station only
            query = query.where(OrgUnit.code == current_user.unit)
        units = db.scalars(query.order_by(OrgUnit.sort, OrgUnit.code))
        form.unit.choices = [choice(u.code, u.name) for u in units]
        channels = db.scalars(select(Channel).where(Channel.region == region).order_by(Channel.sort, Channel.code))
        form.channel.choices = [choice("", "请选择"), *(
            choice(c.code, f"{c.name}（{'线上' if c.mode == 'online' else '线下'}）") for c in channels)]
        form.category.choices = [choice("", "请选择"), *category_choices(db, region)]
    if not form.is_submitted():
        codes = [getattr(c, "value", None) or c[0] for c in form.unit.choices]
        if current_user.unit in codes:
            form.unit.data = current_user.unit


def case_url(business_key: str) -> str:
    """The case page of W1's blueprint (falls back to the inbox while it is missing)."""
    for endpoint in ("cases.case", "cases.show", "cases.detail", "cases.view"):
        if endpoint in current_app.view_functions:
            return url_for(endpoint, business_key=business_key)
    return url_for("status.index")


@bp.route("/intake", methods=["GET", "POST"])
@login_required
def new_case() -> Any:
    """受理登记：录入企业诉求并立案."""
    region = intake_region()
    form = IntakeForm()
    _choices(form, region)
    status = 200
    if form.is_submitted():
        status = 422
        if form.validate():
            fields = {name: (getattr(form, name).data or "").strip() for name in FIELDS}
            fields = {k: v for k, v in fields.items() if v}
            from handlers.intake import submit_case

            engine = current_app.extensions["qifu_engine"]
            try:
                result = submit_case(engine, PROCESS_OF_REGION[region], fields, actor=current_user.username)
            except QifuError as exc:
                if not show_intake_errors(form, exc):
                    flash(f"受理未成功：{exc.message}", "error")
            else:
                link = external_url("public.track", token=result.tracking_token)
                flash(f"已受理，诉求编号 {result.business_key}。", "success")
                flash(f"企业查询和评价链接（只显示这一次，请告知企业）：{link}", "info")
                return redirect(case_url(result.business_key), code=303)
    return render_template("intake/new.html", form=form, region=region), status
