"""Models: every model the caller may see with its state, versions, traffic and card; load, unload, reload."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends
from starlette.responses import RedirectResponse, Response

from aiaas.errors import NotFound
from aiaas.registry.plugins import installed_catalog
from aiaas.service.replicas import replica_rows
from aiaas.ui.web import Console, PageRoute, checked, console

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)


def _timeline(ctx: Console) -> Any:
    timeline = ctx.request.app.state.ui_timeline
    timeline.ensure_started()
    return timeline


def model_rows(ctx: Console) -> list[dict[str, Any]]:
    """One row per model (versions folded in), as the repository index shows it to this caller."""
    timeline = _timeline(ctx)
    models: dict[str, dict[str, Any]] = {}
    for row in ctx.services.control.index(ctx.principal, False):
        m = models.setdefault(row["name"], {"name": row["name"], "versions": [], "states": set(), "reasons": []})
        if row["version"]:
            m["versions"].append(row["version"])
        m["states"].add(row["state"])
        if row["reason"] and row["reason"] not in m["reasons"]:
            m["reasons"].append(row["reason"])
    for name, m in models.items():
        rec = ctx.services.models.models.get(name)
        cfg = rec.config if rec is not None else None
        m["task"] = cfg.task if cfg is not None else ""
        m["state"] = "READY" if "READY" in m["states"] else sorted(m["states"])[0]
        m["instances"] = cfg.instances if cfg is not None else None
        m["series"] = json.dumps(timeline.series(name))
        m["summary"] = timeline.summary(name)
        m["manage"] = ctx.services.control.can_manage(ctx.principal, name)
    return list(models.values())


@router.get("/models")
async def models_page(ctx: Console = Depends(console)) -> Response:
    return ctx.render("models.html", models=model_rows(ctx))


def floors_of(name: str, metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """A catalog model's held-out quality floors beside what its card measured."""
    spec = installed_catalog().specs().get(name)
    if spec is None:
        return []
    out = []
    for f in spec.floors:
        measured = metrics.get(f.metric)
        value = measured if isinstance(measured, int | float) else None
        out.append({"floor": str(f), "measured": measured, "holds": f.holds(value)})
    return out


@router.get("/models/{name}")
async def model_page(name: str, ctx: Console = Depends(console)) -> Response:
    rows = [r for r in model_rows(ctx) if r["name"] == name]
    if not rows:
        raise NotFound(f"unknown model {name!r}")
    meta: dict[str, Any] | None = None
    if rows[0]["state"] == "READY":
        meta = ctx.services.dataplane.model_metadata(ctx.principal, name, None)
    rec = ctx.services.models.models.get(name)
    cfg = rec.config if rec is not None else None
    card = meta["parameters"]["card"] if meta else (cfg.card.model_dump(exclude_defaults=True) if cfg else {})
    spec = installed_catalog().specs().get(name)
    play = None
    if meta is not None and cfg is not None:
        play = {
            "name": name,
            "task": cfg.task or "",
            "backend": cfg.backend,
            "inputs": meta["inputs"],
            "outputs": meta["outputs"],
            "example": json.loads(spec.example) if spec and spec.example else None,
        }
    replicas = [r for v in sorted(rec.versions) for r in replica_rows(name, rec.versions[v])] if rec is not None else []
    return ctx.render(
        "model.html",
        m=rows[0],
        meta=meta,
        card=card,
        config=cfg,
        replicas=replicas,
        floors=floors_of(name, card.get("metrics", {})),
        play=json.dumps(play) if play else None,
    )


async def _act(ctx: Console, name: str, action: str) -> Response:
    control = ctx.services.control
    if action == "unload":
        await control.unload(ctx.principal, name)
    else:  # load and reload: load picks up new versions and re-reads model.yaml
        await control.load(ctx.principal, name)
    return RedirectResponse(f"/ui/models/{name}", status_code=303)


@router.post("/models/{name}/load")
async def load(name: str, ctx: Console = Depends(checked)) -> Response:
    return await _act(ctx, name, "load")


@router.post("/models/{name}/reload")
async def reload(name: str, ctx: Console = Depends(checked)) -> Response:
    return await _act(ctx, name, "reload")


@router.post("/models/{name}/unload")
async def unload(name: str, ctx: Console = Depends(checked)) -> Response:
    return await _act(ctx, name, "unload")
