"""``qifu deploy FILE…``: validate and store diagrams as new versions.

All files are read and validated before anything is stored, and they are stored in one transaction: a
refusal (exit 2, the file, the element and the reason) leaves the database as it was, also for the files
named before the refused one. A file is read only up to the size limit, so a device or a huge file cannot
exhaust memory before the limit is checked.
"""

from __future__ import annotations

from pathlib import Path

import click

from engine.errors import DeploymentError

from . import main, pass_state, reports_errors


def _read(path: Path, limit: int) -> bytes:
    try:
        with path.open("rb") as f:
            content = f.read(limit + 1)
    except FileNotFoundError:
        raise DeploymentError(f"文件不存在: {path}", element=str(path)) from None
    except OSError as exc:
        raise DeploymentError(f"无法读取文件 {path}：{exc.strerror or exc}", element=str(path)) from None
    if len(content) > limit:
        raise DeploymentError(f"文件过大：超过上限 {limit} 字节", element=str(path))
    return content


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--actor", default=None, help="who deploys (recorded)")
@pass_state
@reports_errors
def deploy(state, files: tuple[Path, ...], actor: str | None) -> None:
    """Deploy BPMN files. All are validated first; a refused file changes nothing."""
    repository = state.engine.repository
    contents = [(path, _read(path, repository.max_bytes)) for path in files]
    deployed = repository.deploy_many([(path.name, content) for path, content in contents], actor=actor)
    results = [{"file": str(path), "process": r.deployment.process_key, "version": r.deployment.version,
                "created": r.created, "hash": r.deployment.content_hash}
               for (path, _), r in zip(contents, deployed, strict=True)]
    if state.json:
        state.out("", results)
        return
    for item in results:
        verb = "已部署" if item["created"] else "内容未变，沿用"
        click.echo(f"{verb} {item['process']} 版本 {item['version']} "
                   f"({Path(item['file']).name}, sha256 {item['hash'][:12]})")
