"""Who may scale a model (admin, or a developer of the owning tenant) and the audit row each scale leaves."""

from __future__ import annotations

from pathlib import Path

from security.kit import ROOT, make_world


def test_scale_is_for_admins_and_owners_and_audited(tmp_path: Path) -> None:
    with make_world(tmp_path / "home", tmp_path / "src", None) as w:
        acme_dev, globex_dev = w.key("acme", "developer"), w.key("globex", "developer")
        acme_user = w.key("acme", "user")
        c = w.client
        r = c.post("/v1/models/secret/scale", json={"replicas": 2}, headers=acme_dev.headers)  # acme owns it
        assert r.status_code == 200, r.text
        assert [x["id"] for x in r.json()["replicas"]] == ["r0", "r1"]
        r = c.post("/v1/models/secret/scale", json={"replicas": 1}, headers=globex_dev.headers)
        assert r.status_code == 404  # another tenant's private model: as if missing
        assert c.get("/v1/models/secret/replicas", headers=globex_dev.headers).status_code == 404
        r = c.post("/v1/models/pub/scale", json={"replicas": 2}, headers=acme_dev.headers)
        assert r.status_code == 403 and "owner" in r.text  # public, not acme's
        r = c.post("/v1/models/secret/scale", json={"replicas": 1}, headers=acme_user.headers)
        assert r.status_code == 403 and "role" in r.text
        assert c.get("/v1/models/secret/replicas", headers=acme_user.headers).status_code == 200  # users may look
        assert c.post("/v1/models/pub/scale", json={"replicas": 3}, headers=ROOT).status_code == 200
        rows = c.get("/v1/audit?action=model.scale", headers=ROOT).json()["data"]
        assert {(row["target"], row["details"]["replicas"]) for row in rows} == {("secret", 2), ("pub", 3)}
        assert {row["details"]["before"]["1"] for row in rows} == {1}
