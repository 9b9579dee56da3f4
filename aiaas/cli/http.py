"""A minimal JSON-over-HTTP call for the CLI's listing commands, on the standard library.

``urllib.request`` imports in ~20 ms where httpx takes ~60-150 ms (and ``aiaas.client`` pulls numpy): a
listing that asks a running server for one JSON document should not pay for them. Commands that stream or
upload keep httpx (``aiaas.cli.jobs``) or the full client.

``local`` finds that server (``AIAAS_HOST``, ``AIAAS_PORT``) and its admin key as ``Settings`` does, without
importing pydantic-settings (~0.1 s with its dotenv, asyncio and cloud providers).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The Settings fields ``local`` reads, with Settings' defaults (tests/cli/test_cli_imports.py compares them)
_NAMES = ("aiaas_home", "aiaas_host", "aiaas_port", "aiaas_admin_key")
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000


@dataclass(frozen=True)
class Local:
    """The server this environment configures, for a client on the same machine."""

    home: Path
    url: str  # http://AIAAS_HOST:AIAAS_PORT
    admin_key: str | None  # AIAAS_ADMIN_KEY, else HOME/admin.key, else None


def local(home: Path | None) -> Local:
    """``Local`` read from the environment as ``Settings`` reads it (prefix ``AIAAS_``, names in any case);
    ``home`` (``--home``) overrides ``AIAAS_HOME``. A value ``Settings`` might read differently (an empty one,
    a port that is not plain digits, one name set in two cases) is left to ``Settings`` itself, so the result
    and any error message are always its."""
    from aiaas.server.adminkey import admin_key_of

    found = [(k.lower(), v) for k, v in os.environ.items() if k.lower() in _NAMES]
    env = dict(found)
    port = env.get("aiaas_port", str(DEFAULT_PORT))
    if len(env) != len(found) or "" in env.values() or not (port.isascii() and port.isdigit()):
        from aiaas.settings import Settings

        s = Settings(home=home) if home is not None else Settings()
        key = admin_key_of(s.home, s.admin_key)
        return Local(s.home, f"http://{s.host}:{s.port}", key.key if key else None)
    where = home if home is not None else Path(env.get("aiaas_home") or Path.home() / ".aiaas")
    key = admin_key_of(where, env.get("aiaas_admin_key"))
    return Local(where, f"http://{env.get('aiaas_host', DEFAULT_HOST)}:{int(port)}", key.key if key else None)


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # the decoded JSON, or the text when the answer is not JSON

    def error_message(self) -> str:
        """The server's ``{"error": ...}`` message, else the start of its text."""
        err = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if err is not None:
            return str(err)
        return (self.body if isinstance(self.body, str) else json.dumps(self.body))[:500]


def call(
    base: str,
    method: str,
    path: str,
    *,
    key: str | None = None,
    params: dict[str, Any] | None = None,
    body: Any = None,
    timeout: float = 30.0,
) -> Answer | None:
    """``method base+path?params`` with an optional JSON body and bearer ``key``; None when no server answers
    (refused, unreachable, timed out). Parameters that are None are left out."""
    query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v is not None})
    url = base.rstrip("/") + path + (f"?{query}" if query else "")
    data = None if body is None else json.dumps(body).encode()
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return _answer(r.status, r.read(), r.headers.get_content_type())
    except urllib.error.HTTPError as e:  # 4xx/5xx: the server answered
        with e:
            return _answer(e.code, e.read(), e.headers.get_content_type() if e.headers else "")
    except (urllib.error.URLError, OSError, ValueError):  # refused, unreachable, timed out, bad URL
        return None


def _answer(status: int, raw: bytes, content_type: str) -> Answer:
    text = raw.decode("utf-8", errors="replace")
    if content_type == "application/json":
        try:
            return Answer(status, json.loads(text))
        except ValueError:
            pass
    return Answer(status, text)
