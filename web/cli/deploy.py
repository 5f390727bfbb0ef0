"""``qifu deploy FILE…``: validate and store diagrams as new versions."""

from __future__ import annotations

from pathlib import Path

import click

from engine.errors import DeploymentError

from . import main, pass_state, reports_errors


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--actor", default=None, help="who deploys (recorded)")
@pass_state
@reports_errors
def deploy(state, files: tuple[Path, ...], actor: str | None) -> None:  # noqa: ANN001
    """Deploy BPMN files. Each is validated first; a refused file changes nothing."""
    from engine.repository import MAX_DIAGRAM_BYTES

    results = []
    for path in files:
        if not path.exists():
            raise DeploymentError(f"文件不存在: {path}")
        if path.stat().st_size > MAX_DIAGRAM_BYTES:
            raise DeploymentError(f"文件过大：{path.stat().st_size} 字节，上限 {MAX_DIAGRAM_BYTES} 字节", element=str(path))
        try:
            result = state.engine.deploy(path.read_bytes(), filename=path.name, actor=actor)
        except DeploymentError as exc:
            exc.message = f"{path.name}: {exc.message}"
            raise
        d = result.deployment
        verb = "已部署" if result.created else "内容未变，沿用"
        results.append({"file": str(path), "process": d.process_key, "version": d.version, "created": result.created,
                        "hash": d.content_hash})
        if not state.json:
            click.echo(f"{verb} {d.process_key} 版本 {d.version} ({path.name}, sha256 {d.content_hash[:12]})")
    if state.json:
        state.out("", results)
