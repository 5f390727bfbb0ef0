"""流程设计 (process designers, and 管理员): process versions, upload with a summary of changes and a confirm step,
the in-browser modeler, and migration of running cases to a newer version.

Pages (HTML, CSRF on every POST):

- ``/processes/`` every process key with its newest version and its cases; ``/processes/<key>/`` its versions
  (who deployed, when, content hash, running and finished cases per version); ``/processes/<key>/<n>`` the
  diagram of version n (bpmn-js viewer), ``…/<n>/xml`` its XML as deployed, ``…/<n>/edit`` the modeler.
- ``/processes/upload``: one or several ``.bpmn`` files. Each is validated the way ``qifu deploy`` validates
  (:meth:`engine.repository.RepositoryService.preview`); a refusal is listed in Chinese with the file and the
  element, and nothing is kept. Otherwise the page lists what changes against the newest version and the
  upload waits on the server (:mod:`web.pending_uploads`) until the designer confirms; confirming deploys all
  files in one transaction (validated again), refused if another version came in meanwhile.
- ``/processes/<key>/migrate?from=1&to=2``: the dry run per running case (migrate / cannot, why); POST moves
  the chosen cases, each in its own transaction (:meth:`engine.runtime.RuntimeService.migrate`).

JSON for the modeler under ``/processes/api/`` (session login and CSRF header; errors are
``{"error": {"code", "message", …}}``): ``lint-data`` (topics, form types), ``element-templates``,
``expressions`` (deploy's verdict on each expression), ``preview`` and ``deploy`` (the same two steps as the
upload page, the XML posted by the modeler).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from engine.errors import ConflictError, DeploymentError, NotFoundError, QifuError
from engine.repository import Preview

from .. import designer_lint
from ..pending_uploads import PendingUploads, UploadExpired
from ..read.processes import overview, plan_page, process_page
from .common import engine, now, page_number

bp = Blueprint("processes", __name__, url_prefix="/processes")

DESIGNER_ROLES = frozenset({"流程设计", "管理员"})
MAX_FILES = 10
ROOT = Path(__file__).resolve().parents[2]
TEMPLATES_DIR = ROOT / "processes" / ".camunda" / "element-templates"
BUNDLE = ROOT / "web" / "static" / "modeler" / "dist" / "modeler.js"
_FILENAME_BAD = re.compile(r"[\x00-\x1f\x7f/\\]")
log = logging.getLogger("qifu.deploy")


def may_design(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.roles & DESIGNER_ROLES)


@bp.app_context_processor
def _nav() -> dict[str, Any]:
    return {"may_design": lambda: may_design(current_user)}


def _is_api() -> bool:
    return request.path.startswith("/processes/api/")


def json_error(status: int, code: str, message: str, **extra: Any) -> Response:
    response = jsonify({"error": {"code": code, "message": message, **{k: v for k, v in extra.items() if v}}})
    response.status_code = status
    return response


@bp.before_request
def _only_designers() -> Any:
    if not current_user.is_authenticated:
        if _is_api():
            return json_error(401, "unauthorized", "请先登录")
        return current_app.login_manager.unauthorized()
    if not may_design(current_user):
        if _is_api():
            return json_error(403, "forbidden", "仅流程设计人员和管理员可以使用")
        abort(403)
    return None


@bp.errorhandler(CSRFError)
def _csrf(exc: CSRFError) -> Any:
    if _is_api():
        return json_error(400, "csrf", "缺少或无效的安全令牌（CSRF），请刷新页面后重试")
    return render_template("error.html", status=400, title="请求无效",
                           message="表单已过期或缺少安全令牌（CSRF），请返回刷新页面后重新提交。"), 400


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException) -> Any:
    if _is_api():
        messages = {404: "接口或流程版本不存在", 405: "该接口不支持此请求方法", 413: "请求体过大"}
        return json_error(exc.code or 500, f"http_{exc.code}", messages.get(exc.code or 0, exc.description or "请求无效"))
    return exc


def _upload_page(**context: Any) -> str:
    return render_template("processes/upload.html", max_kib=engine().repository.max_bytes // 1024, **context)


def _bad_request(message: str) -> tuple[str, int]:
    return render_template("error.html", status=400, title="请求无效", message=message), 400


def _pending() -> PendingUploads:
    return PendingUploads(current_app.config["QIFU_VAR_DIR"])


def _clean_filename(name: str | None) -> str | None:
    if not name:
        return None
    base = _FILENAME_BAD.sub("", name.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    return base[:200] or None


def _error_row(preview: Preview) -> dict[str, Any]:
    error = preview.error
    assert error is not None
    return {"file": preview.filename, "process": preview.process_key, "element": error.element,
            "message": error.message}


def _summary_rows(previews: list[Preview]) -> list[dict[str, Any]]:
    return [{"file": p.filename, "process": p.process_key, "name": p.name, "hash": p.content_hash,
             "base_version": p.base_version, "same_as_version": p.same_as_version,
             "summary": p.summary.to_dict() if p.summary else None} for p in previews]


def _hold(files: list[tuple[str | None, bytes]], previews: list[Preview]) -> str:
    expect = {p.process_key: p.base_version for p in previews if p.process_key}
    return _pending().hold(current_user.user_id, files, expect, now())


def _deploy_held(upload_id: str) -> list[Any]:
    """Deploy what :func:`_hold` kept (validated again by the repository); raises QifuError on refusal."""
    pending = _pending()
    held = pending.get(upload_id, current_user.user_id, now())
    results = engine().repository.deploy_many([(f.filename, f.content) for f in held.files],
                                              actor=current_user.username, expect_latest=held.expect_latest)
    pending.drop(upload_id)
    for r in results:
        log.info("deploy %s version %s by %s (sha256 %s, %s)", r.deployment.process_key, r.deployment.version,
                 current_user.username, r.deployment.content_hash, "new" if r.created else "unchanged")
    return results


# --- pages --------------------------------------------------------------------------------------------------
@bp.get("/")
def index() -> Any:
    return render_template("processes/index.html", processes=overview(engine()))


@bp.get("/<key>/")
def versions(key: str) -> Any:
    page = process_page(engine(), key[:200])
    if page is None:
        abort(404)
    return render_template("processes/versions.html", process=page)


def _version_or_404(key: str, version: int) -> Any:
    found = engine().repository.version(key[:200], version)
    if found is None:
        abort(404)
    return found


@bp.get("/<key>/<int:version>")
def diagram(key: str, version: int) -> Any:
    info = _version_or_404(key, version)
    page = process_page(engine(), key)
    return render_template("processes/version.html", info=info, process=page)


@bp.get("/<key>/<int:version>/xml")
def xml(key: str, version: int) -> Response:
    info = _version_or_404(key, version)
    text = engine().repository.xml(info.id) or ""
    download = request.args.get("download") == "1"
    headers = {"Cache-Control": "private, max-age=300"}
    if download:
        headers["Content-Disposition"] = f'attachment; filename="{info.process_key}-v{info.version}.bpmn"'
    return Response(text, mimetype="application/xml", headers=headers)


@bp.get("/<key>/<int:version>/edit")
def modeler(key: str, version: int) -> Any:
    info = _version_or_404(key, version)
    return render_template("processes/modeler.html", info=info, bundle_ready=BUNDLE.exists())


@bp.get("/upload")
def upload_form() -> Any:
    return _upload_page(previews=None)


@bp.post("/upload")
def upload() -> Any:
    limit = engine().repository.max_bytes
    uploads = [f for f in request.files.getlist("files") if f and f.filename]
    if not uploads:
        return _upload_page(previews=None, problem="请选择至少一个 .bpmn 文件"), 400
    if len(uploads) > MAX_FILES:
        return _upload_page(previews=None,
                               problem=f"一次最多上传 {MAX_FILES} 个文件"), 400
    files = [(_clean_filename(f.filename), f.stream.read(limit + 1)) for f in uploads]
    previews = engine().repository.preview(files)
    errors = [_error_row(p) for p in previews if not p.ok]
    if errors:
        return _upload_page(previews=None, errors=errors), 422
    unchanged = all(p.same_as_version is not None for p in previews)
    upload_id = None if unchanged else _hold(files, previews)
    return _upload_page(previews=_summary_rows(previews), upload_id=upload_id,
                           unchanged=unchanged)


@bp.post("/upload/<upload_id>/confirm")
def confirm(upload_id: str) -> Any:
    try:
        results = _deploy_held(upload_id)
    except UploadExpired as exc:
        flash(exc.message)
        return redirect(url_for("processes.upload_form"))
    except QifuError as exc:  # refused again (or another version came in meanwhile): nothing stored
        _pending().drop(upload_id)
        return _upload_page(previews=None,
                               errors=[{"file": None, "process": exc.element, "element": exc.element,
                                        "message": exc.message}]), 409 if isinstance(exc, ConflictError) else 422
    for r in results:
        verb = "已部署为" if r.created else "内容未变，沿用"
        flash(f"{r.deployment.process_key} {verb}版本 {r.deployment.version}（sha256 {r.deployment.content_hash[:12]}）")
    return redirect(url_for("processes.versions", key=results[0].deployment.process_key))


@bp.post("/upload/<upload_id>/cancel")
def cancel(upload_id: str) -> Any:
    _pending().drop(upload_id)
    flash("已取消，未部署任何文件")
    return redirect(url_for("processes.upload_form"))


def _versions_arg(key: str) -> tuple[int, int] | None:
    values = (request.values.get("from", ""), request.values.get("to", ""))
    if not all(v.isdigit() and 0 < int(v) < 1_000_000 for v in values):
        return None
    return int(values[0]), int(values[1])


@bp.get("/<key>/migrate")
def migrate_plan(key: str) -> Any:
    page = process_page(engine(), key[:200])
    if page is None:
        abort(404)
    if not request.args.get("to"):
        return redirect(url_for("processes.migrate_plan", key=key, **{"from": request.args.get("from", "1"),
                                                                       "to": page.newest.version}))
    versions = _versions_arg(key)
    if versions is None:
        return _bad_request("请给出源版本和目标版本（正整数），如 ?from=1&to=2")
    try:
        plan = plan_page(engine(), key, *versions, page_number())
    except (NotFoundError, QifuError) as exc:
        return _bad_request(exc.message)
    return render_template("processes/migrate.html", process=page, plan=plan.plan, pager=plan, results=None)


@bp.post("/<key>/migrate")
def migrate_run(key: str) -> Any:
    page = process_page(engine(), key[:200])
    if page is None:
        abort(404)
    versions = _versions_arg(key)
    if versions is None:
        return _bad_request("请给出源版本和目标版本（正整数）")
    raw = request.form.getlist("case")
    if not raw or not all(v.isdigit() for v in raw) or len(raw) > 500:
        flash("请至少选择一个可以迁移的案件（一次最多 500 个）")
        return redirect(url_for("processes.migrate_plan", key=key, **{"from": versions[0], "to": versions[1]}))
    try:
        outcome = engine().runtime.migrate_many([int(v) for v in raw], key, *versions, actor=current_user.username)
    except QifuError as exc:
        return _bad_request(exc.message)
    moved = [r for _, r, e in outcome if r is not None]
    refused = [(iid, e.message) for iid, r, e in outcome if e is not None]
    flash(f"已迁移 {len(moved)} 个案件到版本 {versions[1]}" + (f"，{len(refused)} 个未迁移" if refused else ""))
    plan = plan_page(engine(), key, *versions, 1)
    return render_template("processes/migrate.html", process=page, plan=plan.plan, pager=plan,
                           results={"moved": moved, "refused": refused})


# --- JSON for the modeler ---------------------------------------------------------------------------------
def _json_body() -> dict[str, Any] | Response:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return json_error(400, "bad_request", "请求体应为 JSON 对象")
    return body


@bp.get("/api/lint-data")
def api_lint_data() -> Response:
    return jsonify(designer_lint.lint_data(engine().services))


@bp.get("/api/element-templates")
def api_element_templates() -> Response:
    templates: list[Any] = []
    for path in sorted(TEMPLATES_DIR.glob("*.json")):
        loaded = json.loads(path.read_text(encoding="utf-8"))
        templates += loaded if isinstance(loaded, list) else [loaded]
    return jsonify(templates)


@bp.post("/api/expressions")
def api_expressions() -> Response:
    body = _json_body()
    if isinstance(body, Response):
        return body
    items = body.get("expressions")
    if not isinstance(items, list) or len(items) > designer_lint.MAX_CHECKS:
        return json_error(400, "bad_request", f"expressions 应为最多 {designer_lint.MAX_CHECKS} 项的数组")
    pairs = []
    for item in items:
        kind, text = (item.get("kind"), item.get("text")) if isinstance(item, dict) else (None, None)
        if kind not in designer_lint.EXPRESSION_KINDS or not isinstance(text, str) or len(text) > 20000:
            return json_error(400, "bad_request", "每项应为 {kind, text}，kind 取 "
                              + "、".join(designer_lint.EXPRESSION_KINDS))
        pairs.append((kind, text))
    return jsonify({"verdicts": designer_lint.verdicts(pairs)})


def _xml_body() -> tuple[str | None, bytes] | Response:
    body = _json_body()
    if isinstance(body, Response):
        return body
    text, filename = body.get("xml"), body.get("filename")
    if not isinstance(text, str) or not text.strip():
        return json_error(400, "bad_request", "缺少 xml（BPMN 文本）")
    if filename is not None and not isinstance(filename, str):
        return json_error(400, "bad_request", "filename 应为文本")
    return _clean_filename(filename), text.encode("utf-8", "surrogatepass")


@bp.post("/api/preview")
def api_preview() -> Response:
    found = _xml_body()
    if isinstance(found, Response):
        return found
    filename, content = found
    preview = engine().repository.preview([(filename, content)])[0]
    if not preview.ok:
        row = _error_row(preview)
        return json_error(422, "invalid_diagram", row["message"], element=row["element"], file=row["file"])
    unchanged = preview.same_as_version is not None
    upload_id = None if unchanged else _hold([(filename, content)], [preview])
    return jsonify({"ok": True, "upload_id": upload_id, **_summary_rows([preview])[0]})


@bp.post("/api/deploy")
def api_deploy() -> Response:
    body = _json_body()
    if isinstance(body, Response):
        return body
    upload_id = body.get("upload_id")
    try:
        results = _deploy_held(upload_id if isinstance(upload_id, str) else "")
    except UploadExpired as exc:
        return json_error(410, exc.code, exc.message)
    except ConflictError as exc:
        _pending().drop(str(upload_id))
        return json_error(409, exc.code, exc.message, element=exc.element)
    except DeploymentError as exc:
        _pending().drop(str(upload_id))
        return json_error(422, exc.code, exc.message, element=exc.element)
    return jsonify({"ok": True, "deployments": [
        {"process_key": r.deployment.process_key, "version": r.deployment.version, "created": r.created,
         "hash": r.deployment.content_hash,
         "url": url_for("processes.diagram", key=r.deployment.process_key, version=r.deployment.version)}
        for r in results]})
