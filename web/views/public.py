"""Public pages for enterprises: submit a problem without an account, follow it, rate the result.

Why it looks the way it does:

- No login, so abuse is limited by a rate limit per client IP stored in the DATABASE (table
  ``rate_limit_hit``): several ``qifu serve`` processes behind one proxy must enforce one limit.
- The enterprise gets a tracking number and a private link ``/track/<token>``. The token is the only
  secret; the database holds its SHA-256 (``tracking_hash``), so the link cannot be rebuilt from a dump.
  The token is shown once, after a redirect (never in a URL other than the link itself), and the tracking
  page forbids caching and referrers so it does not leak through proxies or outgoing links. Between the
  submission and that page the token waits in the visitor's server-side session (:mod:`web.sessions`; the
  cookie holds only a random id) and is removed when shown. The link is built on the configured base URL
  (:func:`web.links.external_url`), never on the Host header the visitor sent.
- The tracking page shows the case's own status and a timeline in plain Chinese: step names and dates,
  never who did what, internal opinions, other cases or the case data.
- When the diagram waits for the enterprise's rating (a user task offered to the group ``企业``), the page
  shows that task's form; submitting completes the task through the engine like any clerk's form, so a
  dissatisfied rating follows the diagram back into handling (FH-7, FH-8).

Settings (``app.config``): ``QIFU_PUBLIC_RATE_LIMIT`` (default 5) submissions per
``QIFU_PUBLIC_RATE_WINDOW`` seconds (default 3600) per client address; ``QIFU_PUBLIC_PROCESS``
(``fenghua_one_place``) and ``QIFU_PUBLIC_CHANNEL`` (``web_form``) for the cases the page starts. Behind a
reverse proxy, the app must see the client's address (``QIFU_TRUSTED_PROXIES``, see :mod:`web.app`), or
every visitor shares one limit.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf import FlaskForm
from sqlalchemy import delete, func, insert, literal, or_, select, text
from sqlalchemy.orm import Session
from wtforms import RadioField, SelectField, StringField, TextAreaField
from wtforms.i18n import get_translations

try:
    from wtforms.fields.choices import SelectChoice
except ImportError:  # WTForms < 3.3
    SelectChoice = None  # type: ignore[assignment,misc]
from wtforms.validators import DataRequired, Length, Optional

from engine.clock import SHANGHAI, to_utc
from engine.errors import ConflictError, FormValidationError, QifuError
from engine.tasks import OpenTask
from web.intake_models import RateLimitHit
from web.links import external_url

bp = Blueprint("public", __name__)

ENTERPRISE_GROUP = "企业"
DEFAULT_PUBLIC_PROCESS = "fenghua_one_place"
DEFAULT_PUBLIC_CHANNEL = "web_form"


def choice(value: str, label: str) -> Any:
    """One select option (WTForms 3.3 deprecates plain tuples; older versions only know tuples)."""
    return SelectChoice(value, label) if SelectChoice is not None else (value, label)


SATISFACTION_CHOICES = [choice(v, v) for v in ("满意", "基本满意", "不满意")]


# --- rate limit (database, shared by every process) ----------------------------------------------------
def client_ip() -> str:
    """The client's address as the WSGI server saw it (a proxy in front should apply ProxyFix)."""
    return request.remote_addr or "unknown"


def ip_bucket(prefix: str, ip: str) -> str:
    """A bucket name that does not store the address itself (personal data): prefix + its digest."""
    return f"{prefix}:{hashlib.sha256(ip.encode('utf-8')).hexdigest()[:40]}"


def take_rate_limit(db: Session, bucket: str, limit: int, window: timedelta, now: datetime) -> bool:
    """Count one attempt in ``bucket``; False (and nothing recorded) when ``limit`` is already reached.

    Check and insert must not interleave between processes: SQLite's write transactions are exclusive
    (``BEGIN IMMEDIATE``), and on PostgreSQL a transaction-scoped advisory lock on the bucket serialises
    them. Hits older than the window are deleted on the way, so the table stays small.
    """
    if db.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(bucket.encode()).digest()[:8], "big", signed=True)
        db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
    since = now - window
    hits = RateLimitHit.__table__
    db.execute(delete(hits).where(hits.c.bucket == bucket, hits.c.at < since))
    used = (select(func.count()).select_from(hits).where(hits.c.bucket == bucket, hits.c.at >= since)
            .scalar_subquery())
    row = select(literal(bucket, hits.c.bucket.type), literal(now, hits.c.at.type)).where(used < limit)
    # one statement counts and inserts (no ORM flush): the hit is recorded only while under the limit
    taken = db.execute(insert(hits).from_select(["bucket", "at"], row).returning(hits.c.id)).first()
    return taken is not None


def _engine() -> Any:
    return current_app.extensions["qifu_engine"]


# --- reference data for the forms -----------------------------------------------------------------------
def category_choices(db: Session, region: str | None) -> list[Any]:
    """Categories of FH-1 for ``region`` (top level and sub-items, the latter indented under their parent)."""
    from handlers.models import Category

    rows = list(db.execute(select(Category.code, Category.name, Category.parent_code, Category.region)
                           .where(or_(Category.region.is_(None), Category.region == region))
                           .order_by(Category.sort, Category.id)))  # plain rows: no ORM objects per request
    tops = [r for r in rows if not r.parent_code]
    out: list[Any] = []
    for top in tops:
        out.append(choice(top.code, top.name))
        out.extend(choice(c.code, f"{top.name} · {c.name}") for c in rows if c.parent_code == top.code)
    out.extend(choice(r.code, r.name) for r in rows if r.parent_code and r.parent_code not in {t.code for t in tops})
    return out


# --- the public submission form ------------------------------------------------------------------------
class ChineseForm(FlaskForm):
    """A FlaskForm whose built-in WTForms messages ("Not a valid choice" …) come out in Chinese.

    Flask-WTF translates only through Flask-Babel, which this app does not use; WTForms ships the Chinese
    catalogue itself, so the form's meta asks for it directly.
    """

    class Meta:
        def get_translations(self, form: Any) -> Any:
            return get_translations(["zh"])


class PublicCaseForm(ChineseForm):
    """Shape checks only; :func:`handlers.intake.submit_case` checks content (phone, credit code, category)."""

    enterprise_name = StringField("企业名称", validators=[DataRequired("请填写企业名称"),
                                                      Length(max=100, message="企业名称最多100字")])
    credit_code = StringField("统一社会信用代码", validators=[Optional(), Length(max=18, message="应为18位")])
    contact_name = StringField("联系人", validators=[DataRequired("请填写联系人"), Length(max=50, message="联系人最多50字")])
    contact_phone = StringField("联系电话", validators=[DataRequired("请填写联系电话"),
                                                    Length(max=20, message="联系电话格式不正确")])
    category = SelectField("诉求类别", validators=[DataRequired("请选择诉求类别")])
    title = StringField("标题", validators=[Optional(), Length(max=100, message="标题最多100字")])
    description = TextAreaField("问题描述", validators=[
        DataRequired("请描述遇到的问题"), Length(min=5, max=2000, message="问题描述应为5至2000字")])


def _public_process() -> tuple[str, str, str]:
    process_key = current_app.config.get("QIFU_PUBLIC_PROCESS", DEFAULT_PUBLIC_PROCESS)
    channel = current_app.config.get("QIFU_PUBLIC_CHANNEL", DEFAULT_PUBLIC_CHANNEL)
    region = "pan_an" if process_key == "pan_an_station" else "fenghua"
    return process_key, channel, region


def _rate_limit_settings() -> tuple[int, timedelta]:
    limit = int(current_app.config.get("QIFU_PUBLIC_RATE_LIMIT", 5))
    window = int(current_app.config.get("QIFU_PUBLIC_RATE_WINDOW", 3600))
    return limit, timedelta(seconds=window)


def intake_errors(exc: QifuError) -> dict[str, str]:
    """Per-field messages of a refused intake (``errors`` on the exception, or in its details)."""
    errors = getattr(exc, "errors", None) or (exc.details or {}).get("errors") or {}
    return {str(k): str(v) for k, v in errors.items()}


def show_intake_errors(form: Any, exc: QifuError) -> dict[str, str]:
    """Put a refused intake's per-field messages on the matching form fields; returns them (empty: none)."""
    errors = intake_errors(exc)
    for name, message in errors.items():
        field = getattr(form, name, None)
        if field is not None and hasattr(field, "errors"):
            field.errors = [*field.errors, message]
    return errors


@bp.route("/submit", methods=["GET", "POST"])
def submit() -> Any:
    """企业在线提交诉求（无需登录）."""
    engine = _engine()
    process_key, channel, region = _public_process()
    form = PublicCaseForm()
    with engine.session() as db:
        form.category.choices = [choice("", "请选择"), *category_choices(db, region)]
    if request.method == "POST" and form.validate_on_submit():
        limit, window = _rate_limit_settings()
        with engine.session() as db:
            allowed = take_rate_limit(db, ip_bucket("public_submit", client_ip()), limit, window,
                                      engine.clock.now())
        if not allowed:
            hours = max(1, int(window.total_seconds() // 3600))
            message = f"提交过于频繁：同一网络每{hours}小时最多提交{limit}次，请稍后再试或拨打 0574-88888718。"
            return render_template("public/submit.html", form=form, error=message), 429
        fields = {name: (getattr(form, name).data or "").strip() for name in
                  ("enterprise_name", "credit_code", "contact_name", "contact_phone", "category", "title",
                   "description")}
        fields = {k: v for k, v in fields.items() if v}
        fields["channel"] = channel
        from handlers.intake import submit_case

        try:
            result = submit_case(engine, process_key, fields, actor="企业（网上提交）")
        except QifuError as exc:
            errors = show_intake_errors(form, exc)
            general = None if errors else exc.message
            return render_template("public/submit.html", form=form, error=general or "提交未成功，请检查标红的项目。"), 422
        session["public_receipt"] = {"business_key": _get(result, "business_key"),
                                     "token": _get(result, "tracking_token")}
        return redirect(url_for("public.submitted"), code=303)
    status = 422 if request.method == "POST" else 200
    return render_template("public/submit.html", form=form, error=None), status


def _get(result: Any, name: str) -> Any:
    return result[name] if isinstance(result, dict) else getattr(result, name)


@bp.get("/submit/done")
def submitted() -> Any:
    """Shows the tracking number and the private link once (kept until then in the visitor's server-side
    session, never in the cookie)."""
    receipt = session.pop("public_receipt", None)
    if not receipt:
        return redirect(url_for("public.submit"))
    link = external_url("public.track", token=receipt["token"])
    response = make_response(render_template("public/submitted.html", business_key=receipt["business_key"],
                                             link=link))
    return _private(response)


# --- tracking and rating -------------------------------------------------------------------------------
class RatingForm(ChineseForm):
    satisfaction = RadioField("满意度", choices=SATISFACTION_CHOICES,
                              validators=[DataRequired("请选择满意度")])
    rating_comment = TextAreaField("意见和建议", validators=[Optional(), Length(max=2000)])


EVENT_WORDS = {"started": "诉求已受理", "timer_rescheduled": "办理期限已调整", "deadline_recomputed": "办理期限已调整"}
STATUS_WORDS = {"handling": "办理中", "answered": "已答复", "closed": "已办结", "carried": "跟踪办理中"}
# Service tasks the enterprise hears about (by topic); bookkeeping (ledger, notify, sampling) stays internal.
TOPIC_WORDS = {"transfer": "已交承办单位办理", "joint_review": "已组织相关部门会商办理", "escalate": "已上报协调解决"}


def public_timeline(engine: Any, instance_id: int) -> list[dict[str, Any]]:
    """The steps of one case as an enterprise should see them: when, and which step (names only).

    Built from the engine's history: the start, each completed user task, the transfers, joint reviews and
    escalations, the end, and deadline changes. Actors, form data, opinions and notes are left out.
    """
    steps: list[dict[str, Any]] = []

    def add(at: datetime, words: str) -> None:
        if not steps or steps[-1]["text"] != words:
            steps.append({"at": at, "text": words})

    for event in engine.history.events(instance_id):
        at = event.at.astimezone(SHANGHAI)
        if event.action in EVENT_WORDS:
            add(at, EVENT_WORDS[event.action])
        topics = {n.get("element"): n.get("topic") for n in event.notes}
        for element in event.completed:
            topic = topics.get(element.element)
            if topic in TOPIC_WORDS:
                add(at, TOPIC_WORDS[topic])
            elif element.name and "UserTask" in element.type:
                add(at, f"{element.name}：已完成")
            elif element.name and element.type.endswith("EndEvent"):
                add(at, f"{element.name}")
    return steps


def enterprise_messages(db: Session, instance_id: int) -> list[dict[str, Any]]:
    """What the case told the enterprise (answers, explanations, agreed dates): the ``notify`` outbox rows
    addressed to ``enterprise``. They were written for the enterprise, so showing them leaks nothing."""
    from handlers.models import Outbox

    rows = db.scalars(select(Outbox).where(Outbox.instance_id == instance_id, Outbox.recipient == "enterprise")
                      .order_by(Outbox.id))
    return [{"at": to_utc(r.created_at).astimezone(SHANGHAI), "text": r.body} for r in rows]


def case_contact(db: Session, case: Any) -> dict[str, str] | None:
    """Who the enterprise calls about its case: the unit that received it (a Pan'an station, the Fenghua centre)
    with the phone of the unit registry (PA-1, FH-9), not one region's hotline for every case."""
    from handlers.models import OrgUnit

    unit = db.scalar(select(OrgUnit).where(OrgUnit.code == case.unit))
    if unit is None or not unit.phone:
        return None
    return {"name": unit.name, "phone": unit.phone}


def public_status(engine: Any, case: Any) -> dict[str, Any]:
    """Status of one case for the enterprise (tracking page) and the API client that created it."""
    instance = engine.runtime.instances([case.instance_id]).get(case.instance_id)
    current = [t.name for t in engine.tasks.of_instances([case.instance_id]).get(case.instance_id, []) if t.name]
    return {**case_status(case, finished=instance is not None and instance.status != "running"),
            "current_steps": current}


def case_status(case: Any, *, finished: bool) -> dict[str, Any]:
    """What :func:`public_status` says from the ledger row alone (no task list), given whether the case ended."""
    status = case.ledger_status or "handling"
    return {
        "business_key": case.business_key,
        "status": status,
        "status_text": "已办结" if finished and status != "carried" else STATUS_WORDS.get(status, status),
        "finished": finished,
        "received_at": to_utc(case.received_at).astimezone(SHANGHAI),
        "title": case.title,
        "satisfaction": case.satisfaction,
    }


def _rating_task(engine: Any, instance_id: int) -> OpenTask | None:
    """The task that waits for the enterprise's rating (offered to the group ``企业``), if one is open."""
    for task in engine.tasks.of_instances([instance_id]).get(instance_id, []):
        if ENTERPRISE_GROUP in task.candidate_groups:
            return task
    return None


def _private(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _case_for_token(db: Session, token: str) -> Any:
    from handlers.intake import find_by_token

    if not token or len(token) > 200:
        return None
    return find_by_token(db, token)


@bp.route("/track/<token>", methods=["GET", "POST"])
def track(token: str) -> Any:
    """企业凭私人链接查看办理进度；待评价时在此评价."""
    engine = _engine()
    form = RatingForm()
    with engine.session() as db:
        case = _case_for_token(db, token)
        if case is None:
            return not_found_page()
        rating_task = _rating_task(engine, case.instance_id)
        task_guid = rating_task.task_guid if rating_task else None
    status_code = 200
    if request.method == "POST":
        if task_guid is None:
            flash("该诉求当前无需评价。", "info")
            return redirect(url_for("public.track", token=token), code=303)
        if form.validate_on_submit():
            data = {"satisfaction": form.satisfaction.data, "rating_comment": (form.rating_comment.data or "").strip()}
            if not data["rating_comment"]:
                data.pop("rating_comment")
            try:
                engine.runtime.complete_task(task_guid, data, actor=ENTERPRISE_GROUP)
            except FormValidationError as exc:
                for name, message in exc.errors.items():
                    field = getattr(form, name, None)
                    if field is not None:
                        field.errors = [message]
                status_code = 422
            except ConflictError:
                flash("该评价已提交或已失效，请刷新页面。", "info")
                return redirect(url_for("public.track", token=token), code=303)
            else:
                flash("感谢您的评价！" + ("我们将重新办理您的诉求。" if data["satisfaction"] == "不满意" else ""),
                      "success")
                return redirect(url_for("public.track", token=token), code=303)
        else:
            status_code = 422
    with engine.session() as db:
        case = _case_for_token(db, token)
        status = public_status(engine, case)
        timeline = public_timeline(engine, case.instance_id)
        messages = enterprise_messages(db, case.instance_id)
        rating_open = _rating_task(engine, case.instance_id) is not None
        contact = case_contact(db, case)
    response = make_response(render_template("public/track.html", status=status, timeline=timeline,
                                             messages=messages, rating_open=rating_open, form=form,
                                             contact=contact), status_code)
    return _private(response)


def not_found_page() -> Any:
    """A Chinese 404 page; a wrong tracking link must not reveal whether any case exists."""
    return _private(make_response(render_template("public/404.html"), 404))
