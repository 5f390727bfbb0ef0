"""JSON as the engine stores it: compact, Chinese text as it is, anything not JSON written as ``str(it)``.

Every step writes its case data, its history event and its state as JSON, so the encoder is orjson (several
times faster than the standard library's). What orjson refuses — an integer beyond 64 bits, a set a script
left in the data — falls back to the standard library with the same output format, so no value a diagram can
produce fails a step.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


def dumps(value: Any, *, sort_keys: bool = False) -> str:
    """``value`` as compact JSON text; ``sort_keys`` for text that is hashed (the history chain)."""
    try:
        return orjson.dumps(value, default=str,
                            option=_OPTIONS | orjson.OPT_SORT_KEYS if sort_keys else _OPTIONS).decode("utf-8")
    except TypeError:
        return json.dumps(value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False, default=str)


def loads(text: str | bytes) -> Any:
    """Parse stored JSON with the standard library: orjson would read an integer beyond 64 bits as a float."""
    return json.loads(text)


def jsonable(value: Any) -> Any:
    """``value`` as it will be stored and read back: JSON types only."""
    return loads(dumps(value))
