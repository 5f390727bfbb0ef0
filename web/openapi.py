"""The OpenAPI 3.1 description of the intake API, written by hand so it says what the code promises.

Served at ``/api/openapi.json``; a test checks it is well formed and that the routes it names exist. The
``servers`` entry is the configured base URL (``QIFU_BASE_URL``), not the Host header of the request.
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "机器可读的错误码"},
                "message": {"type": "string", "description": "中文错误说明"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"},
                           "description": "字段 → 中文错误说明"},
            },
        },
    },
}

CASE_INPUT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["enterprise_name", "contact_name", "contact_phone", "category", "description"],
    "properties": {
        "channel": {"type": "string", "description": "渠道编码（客户端只能使用被授权的渠道；只有一个时可省略）"},
        "category": {"type": "string", "description": "诉求类别编码（要素保障、政策咨询、专项服务、其他及其子项）"},
        "enterprise_name": {"type": "string", "maxLength": 200, "description": "企业名称"},
        "credit_code": {"type": "string", "description": "统一社会信用代码（18位，可选）"},
        "contact_name": {"type": "string", "maxLength": 100, "description": "联系人"},
        "contact_phone": {"type": "string", "description": "联系电话"},
        "contact_id_number": {"type": "string", "description": "联系人身份证号（可选）"},
        "title": {"type": "string", "maxLength": 200, "description": "诉求标题"},
        "description": {"type": "string", "description": "问题描述"},
    },
}

CASE_CREATED = {
    "type": "object",
    "required": ["business_key", "status", "tracking_token", "tracking_url", "status_url"],
    "properties": {
        "business_key": {"type": "string", "examples": ["FH-20260930-0001"], "description": "诉求编号"},
        "status": {"type": "string", "enum": ["handling", "answered", "closed", "carried"]},
        "status_text": {"type": "string"},
        "received_at": {"type": "string", "format": "date-time"},
        "status_url": {"type": "string", "format": "uri"},
        "tracking_token": {"type": "string", "description": "企业的私人查询令牌（请转交企业，勿公开）"},
        "tracking_url": {"type": "string", "format": "uri", "description": "企业查看进度和评价的私人链接"},
    },
}

CASE_STATUS = {
    "type": "object",
    "required": ["business_key", "status", "status_text", "finished", "timeline"],
    "properties": {
        "business_key": {"type": "string"},
        "status": {"type": "string", "enum": ["handling", "answered", "closed", "carried"]},
        "status_text": {"type": "string"},
        "finished": {"type": "boolean"},
        "received_at": {"type": "string", "format": "date-time"},
        "current_steps": {"type": "array", "items": {"type": "string"}},
        "satisfaction": {"type": ["string", "null"], "enum": ["满意", "基本满意", "不满意", None]},
        "timeline": {"type": "array", "items": {
            "type": "object", "required": ["at", "text"],
            "properties": {"at": {"type": "string", "format": "date-time"}, "text": {"type": "string"}}}},
    },
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def document(server_url: str = "") -> dict[str, Any]:
    """The OpenAPI document; ``server_url`` is the configured base URL (:func:`web.links.base_url`)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "企服 Qifu 诉求受理接口",
            "version": "1.0.0",
            "description": "线上渠道（微信公众号、甬企码、电脑端平台、热线系统等）向企业服务中心提交企业诉求。"
                           "每个请求须带 Idempotency-Key：网络重试时使用同一个值，保证不会重复立案。",
        },
        "servers": [{"url": server_url or "/"}],
        "security": [{"bearerAuth": []}],
        "paths": {
            "/api/v1/cases": {
                "post": {
                    "operationId": "createCase",
                    "summary": "提交企业诉求",
                    "parameters": [{
                        "name": "Idempotency-Key", "in": "header", "required": True,
                        "description": "客户端生成的唯一值（如 UUID）；同一值同一内容重试返回首次结果（200），"
                                       "同一值不同内容返回 409",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                    }],
                    "requestBody": {"required": True, "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/CaseInput"}}}},
                    "responses": {
                        "201": {"description": "已受理", "headers": {
                            "Location": {"schema": {"type": "string"}, "description": "状态查询地址"}},
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CaseCreated"}}}},
                        "200": {"description": "重试：返回首次受理的结果（响应头 Idempotent-Replayed: true）",
                                "content": {"application/json": {
                                    "schema": {"$ref": "#/components/schemas/CaseCreated"}}}},
                        "400": _error("请求格式错误（非 JSON 对象、JSON 嵌套过深、缺少 Idempotency-Key）"),
                        "401": _error("缺少或无效的访问令牌"),
                        "409": _error("幂等键已用于内容不同的请求"),
                        "413": _error("请求体过大（超过服务端上限，默认 1 MiB）"),
                        "422": _error("字段有误，未予受理（fields 列出各字段的原因，包括空字符 NUL、"
                                      "孤立代理项等无法保存的文本）"),
                        "429": _error("请求过于频繁"),
                        "500": _error("服务器内部错误"),
                    },
                },
            },
            "/api/v1/cases/{business_key}": {
                "get": {
                    "operationId": "getCase",
                    "summary": "查询本客户端提交的诉求的办理状态",
                    "parameters": [{"name": "business_key", "in": "path", "required": True,
                                    "schema": {"type": "string"}}],
                    "responses": {
                        "200": {"description": "办理状态", "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/CaseStatus"}}}},
                        "401": _error("缺少或无效的访问令牌"),
                        "404": _error("未找到（或不是本客户端提交的诉求）"),
                        "500": _error("服务器内部错误"),
                    },
                },
            },
            "/api/openapi.json": {
                "get": {"operationId": "openapi", "summary": "本接口说明（OpenAPI 3.1）", "security": [],
                        "responses": {"200": {"description": "OpenAPI 文档",
                                              "content": {"application/json": {"schema": {"type": "object"}}}}}},
            },
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "qifu api-client add 生成的令牌"}},
            "schemas": {"Error": ERROR_SCHEMA, "CaseInput": CASE_INPUT, "CaseCreated": CASE_CREATED,
                        "CaseStatus": CASE_STATUS},
        },
    }
