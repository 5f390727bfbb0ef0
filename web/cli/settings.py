"""``qifu settings``: every setting, its value now and its default (the table README shows)."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from engine.settings import table

from . import main, pass_state, reports_errors

SECRET = "QIFU_SECRET_KEY"


@main.command()
@pass_state
@reports_errors
def settings(state) -> None:
    """Print each QIFU_* setting with the value in effect (secrets and passwords hidden) and its default."""
    from web.settings import Settings

    current = _values(state.settings)
    rows = [{"variable": env, "value": current.get(env), "default": default, "meaning": doc}
            for env, default, doc in table(Settings)]
    state.out("\n".join(f"{r['variable']} = {r['value'] if r['value'] is not None else ''}"
                        f"    (默认 {r['default'] or '未设置'})" for r in rows), rows)


def _values(settings: object) -> dict[str, str | None]:
    """The value in effect of every setting, by variable, as text."""
    import dataclasses

    out: dict[str, str | None] = {}
    for f in dataclasses.fields(settings):  # type: ignore[arg-type]
        value = getattr(settings, f.name)
        if "section" in f.metadata:
            out.update(_values(value))
            continue
        env = f.metadata["env"]
        if value is None:
            out[env] = None
        elif env == SECRET:
            out[env] = "（已设置，不显示）"
        elif env == "QIFU_DATABASE_URL":
            out[env] = make_url(value).render_as_string(hide_password=True)
        else:
            out[env] = str(value).lower() if isinstance(value, bool) else str(value)
    return out
