"""The catalog's asset files (``aiaas/catalog/models/assets/``: README example inputs, evaluation sentences),
shipped as package data next to the model modules that use them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).resolve().parent / "models" / "assets"  # package data (pyproject.toml)


def asset_bytes(name: str) -> bytes:
    """The bytes of asset file ``name``."""
    return (ASSETS / name).read_bytes()


def json_asset(name: str) -> Any:
    """The parsed JSON of asset file ``name``."""
    return json.loads((ASSETS / name).read_text(encoding="utf-8"))
