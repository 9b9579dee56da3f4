"""docs/grafana-dashboard.json queries only metric names the server exports (checked against /metrics)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi.testclient import TestClient
from v2kit import ADMIN_KEY

from aiaas.server.app import create_app
from aiaas.settings import Settings

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
PROMQL_WORDS = {
    "label_values",
    "sum",
    "by",
    "rate",
    "histogram_quantile",
    "count",
    "le",
    "model",
    "outcome",
    "tenant",
    "reason",
    "state",
    "without",
    "on",
    "ignoring",
}
SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created")


def exported(text: str) -> set[str]:
    """Family names (from # TYPE lines, so families without samples yet count) plus every sample name."""
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    names |= {line.split("{")[0].split()[0] for line in text.splitlines() if line and not line.startswith("#")}
    return names


def test_every_dashboard_query_uses_exported_metrics(tmp_path: Path) -> None:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    app = create_app(Settings(home=tmp_path, admin_key=ADMIN_KEY, catalog="none", governance="off"))  # type: ignore[call-arg]
    with TestClient(app) as c:
        names = exported(c.get("/metrics").text)
    used = set()
    for expr in exprs:
        expr = re.sub(r'"[^"]*"', '""', re.sub(r"\[[^\]]*\]", "", expr))  # drop label values and ranges
        expr = re.sub(r"\{[^}]*\}", "", expr)  # and label matchers
        used |= {w for w in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr) if w not in PROMQL_WORDS}
    assert len(used) >= 15
    unknown = sorted(
        w for w in used if w not in names and not any(w.endswith(s) and w[: -len(s)] in names for s in SUFFIXES)
    )
    assert unknown == [], f"the dashboard queries metrics /metrics does not export: {unknown}"
