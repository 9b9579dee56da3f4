"""``--json`` for the listing commands: the rows a table would show, as JSON on stdout for scripts."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON (for scripts) instead of a table")]


def print_json(data: Any) -> None:
    """Plain JSON (no colour, no wrapping), one document, so ``| jq`` always works."""
    sys.stdout.write(json.dumps(data, default=str, indent=2) + "\n")
    sys.stdout.flush()
