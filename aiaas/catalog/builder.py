"""Build catalog models into the repository: check requirements, train/export/evaluate, write the card."""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiaas.errors import NotFound
from aiaas.registry import ModelRepository
from aiaas.registry.catalogspec import BuildContext, CatalogSpec, Progress
from aiaas.registry.plugins import Status

log = logging.getLogger("aiaas.catalog")

__all__ = ["Status", "build", "catalog_info", "expected_seconds", "status", "sweep_workdirs"]


def catalog_info(repo: ModelRepository, name: str) -> dict[str, Any] | None:
    """The ``card.extra.catalog`` block of a built catalog model, or None."""
    try:
        entry = repo.read(name)
    except NotFound:
        return None
    if entry.config is None:
        return None
    info = entry.config.card.extra.get("catalog")
    return dict(info, metrics=entry.config.card.metrics) if isinstance(info, dict) else None


def status(spec: CatalogSpec, repo: ModelRepository, quick: bool = False) -> Status:
    missing = spec.requires.missing()
    if missing:
        return Status("unavailable", f"needs: {missing}")
    info = catalog_info(repo, spec.name)
    if info is None:
        return Status("not built")
    if info.get("revision") != spec.revision or (info.get("quick") and not quick):
        return Status(
            "stale",
            "built by an older recipe" if info.get("revision") != spec.revision else "quick build",
            info.get("metrics"),
            info.get("quick"),
        )
    return Status("built", f"version {info.get('version')}", info.get("metrics"), info.get("quick"))


WORK_PREFIX = "aiaas-catalog-"
_WORK_PID = re.compile(r"-(\d+)-[^-]+$")


def sweep_workdirs(tmp: str | None = None) -> list[str]:
    """Remove the temporary directories of catalog builds whose process is gone (killed before its cleanup
    ran); returns what was removed. Builds still running keep theirs."""
    root = Path(tmp or tempfile.gettempdir())
    removed = []
    for d in root.glob(WORK_PREFIX + "*"):
        m = _WORK_PID.search(d.name)
        if not d.is_dir() or m is None or _alive(int(m.group(1))):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(str(d))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def expected_seconds(spec: CatalogSpec, repo: ModelRepository) -> float:
    """How long a full build of ``spec`` should take: this machine's last full build, else the spec's estimate."""
    info = catalog_info(repo, spec.name) or {}
    measured = info.get("build_seconds")
    if isinstance(measured, (int, float)) and not info.get("quick"):
        return float(measured)
    return spec.build_s


def build(spec: CatalogSpec, repo: ModelRepository, quick: bool, progress: Progress, seed: int = 0) -> Status:
    """Build one model now (whatever its status); never raises for a build failure, returns it."""
    missing = spec.requires.missing()
    if missing:
        return Status("unavailable", f"needs: {missing}")
    work = tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{spec.name}-{os.getpid()}-")  # the pid lets sweeps find orphans
    ctx = BuildContext(repo=repo, name=spec.name, quick=quick, workdir=Path(work), progress=progress, seed=seed)
    before = _snapshot(repo, spec.name)
    t0 = time.monotonic()
    try:
        result = spec.build(ctx)
    except Exception as e:  # reported as this model's status, the others go on
        log.error("catalog build of %s failed:\n%s", spec.name, traceback.format_exc())
        _rollback(repo, spec.name, before)
        return Status("failed", f"{type(e).__name__}: {e}")
    except BaseException:  # stopped (SIGTERM -> SystemExit, Ctrl-C): leave no half-written version behind
        _rollback(repo, spec.name, before)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.monotonic() - t0
    try:
        entry = repo.read(spec.name)
    except NotFound:
        return Status("failed", "the build wrote no model")
    if entry.config is None:
        _rollback(repo, spec.name, before)
        return Status("failed", f"the build wrote an invalid model.yaml: {entry.error}")
    version = max(entry.versions) if entry.versions else None
    card = entry.config.card
    extra = dict(card.extra)
    extra["catalog"] = {
        "revision": spec.revision,
        "quick": quick,
        "version": version,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "build_seconds": round(seconds, 1),
        "scenario": spec.scenario,
        "floors": {f.metric: f"{f.op} {f.value:g}" for f in spec.floors},
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }
    metrics = {**card.metrics, **{k: _round(v) for k, v in result.metrics.items()}}
    config = entry.config.model_copy(
        update={
            "card": card.model_copy(
                update={
                    "extra": extra,
                    "metrics": metrics,
                    "source": card.source or spec.source,
                    "license": card.license or spec.license,
                }
            ),
            "task": entry.config.task or spec.task,
            "description": entry.config.description or spec.summary,
        }
    )
    repo.write_config(spec.name, config)
    return Status("built", f"version {version} in {seconds:.0f}s", metrics, quick)


def _snapshot(repo: ModelRepository, name: str) -> tuple[set[str], bytes | None]:
    """The version directories and model.yaml of a model before its build, to undo a failed build."""
    path = repo.path(name)
    versions = {p.name for p in path.iterdir() if p.is_dir() and p.name.isdigit()} if path.is_dir() else set()
    config = path / "model.yaml"
    return versions, config.read_bytes() if config.is_file() else None


def _rollback(repo: ModelRepository, name: str, before: tuple[set[str], bytes | None]) -> None:
    """Undo what a failed build wrote (e.g. a version written before its evaluation failed): a failed build
    leaves the model as it was, so the server never loads an unmeasured version."""
    versions, config = before
    path = repo.path(name)
    if not path.is_dir():
        return
    for p in path.iterdir():
        if p.is_dir() and p.name.isdigit() and p.name not in versions:
            shutil.rmtree(p, ignore_errors=True)
    if config is not None:
        tmp = path / ".model.yaml.rollback"
        tmp.write_bytes(config)
        tmp.replace(path / "model.yaml")
    elif not versions:
        shutil.rmtree(path, ignore_errors=True)  # the model did not exist before this build
    else:
        (path / "model.yaml").unlink(missing_ok=True)


def _round(v: Any) -> Any:
    return round(float(v), 4) if isinstance(v, (int, float)) else v
