"""``aiaas run MODEL [INPUT...]``, ``aiaas chat MODEL`` and ``aiaas ps``: try models on a running server.

They talk HTTP to ``--url`` (default ``http://AIAAS_HOST:AIAAS_PORT``) with ``--api-key`` (env
``AIAAS_API_KEY``; default: the admin key of ``--home``), as any client would.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from aiaas.cli.jobs import _Server
from aiaas.errors import AiaasError

console = Console()
err_console = Console(stderr=True)

UrlOpt = Annotated[str | None, typer.Option("--url", help="server URL (default http://AIAAS_HOST:AIAAS_PORT)")]
KeyOpt = Annotated[
    str | None, typer.Option("--api-key", envvar="AIAAS_API_KEY", help="API key (default: the admin key of --home)")
]
HomeOpt = Annotated[Path | None, typer.Option("--home", help="aiaas home, for the default URL and admin key")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(1)


class _Http(_Server):
    """``jobs._Server`` (URL, key, error answers as one red line and exit 1) plus what ``run`` and ``chat`` need."""

    def __init__(self, url: str | None, api_key: str | None, home: Path | None, timeout: float = 300.0) -> None:
        super().__init__(url, api_key, home, timeout)

    def unreachable(self, e: Exception) -> typer.Exit:
        return _fail(f"cannot reach the server at {self.base} ({e}); start it with `aiaas serve`")


def _check(r: Any) -> None:
    if r.status_code < 400:
        return
    try:
        err = json.loads(r.read() if hasattr(r, "read") else r.content)["error"]
        message = err["message"] if isinstance(err, dict) else str(err)
    except (ValueError, KeyError, TypeError):
        message = r.text[:300]
    raise _fail(f"{message} (HTTP {r.status_code})")


def run(
    model: Annotated[str, typer.Argument(help="model name (see `aiaas models list`)")],
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            help="text, a file path (image, audio, CSV), '-' for stdin, or NAME=VALUE for a named input; "
            "several make a batch"
        ),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="request parameter KEY=VALUE (JSON value)")
    ] = None,
    version: Annotated[
        str | None, typer.Option("--model-version", help="model version (default: latest ready)")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="folder for audio and image outputs")] = Path("."),
    as_json: JsonOpt = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    home: HomeOpt = None,
) -> None:
    """Run a model on some input and print its answer: labels with scores, text, saved audio or images."""
    from aiaas.cli.tensors import build_inputs, render
    from aiaas.client import Client, ClientError

    server = _Http(url, api_key, home)
    meta = server("GET", f"/v2/models/{model}" + (f"/versions/{version}" if version else ""))
    try:
        tensors = build_inputs(meta, list(inputs or []), sys.stdin.buffer if "-" in (inputs or []) else None)
        parameters = dict(_param(p) for p in param or [])
    except AiaasError as e:
        raise _fail(e.message) from None
    client = Client(server.base, api_key=server.key, timeout=300)
    try:
        result = client.infer(model, tensors, version=version, binary=True, parameters=parameters or None)
    except ClientError as e:
        raise _fail(e.message) from None
    except Exception as e:  # transport errors
        raise _fail(f"cannot reach the server at {server.base}: {e}") from None
    if as_json:
        console.print_json(json.dumps({k: _jsonable(v) for k, v in result.items()}))
        return
    out.mkdir(parents=True, exist_ok=True)
    for line in render(result, out, model):
        console.print(escape(line), soft_wrap=True)


def _jsonable(arr: Any) -> Any:
    if arr.dtype == object:
        return [v.decode(errors="replace") if isinstance(v, bytes) else v for v in arr.reshape(-1)]
    return arr.tolist()


def _param(text: str) -> tuple[str, Any]:
    from aiaas.errors import InvalidInput

    key, eq, value = text.partition("=")
    if not eq or not key:
        raise InvalidInput(f"--param {text!r}: expected KEY=VALUE, e.g. -p max_tokens=32")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def chat(
    model: Annotated[str, typer.Argument(help="an LLM served by the server (see `aiaas models list`)")],
    message: Annotated[
        list[str] | None, typer.Option("--message", "-m", help="send this and exit (repeat for turns)")
    ] = None,
    system: Annotated[str | None, typer.Option("--system", help="system prompt")] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="tokens per answer")] = 256,
    temperature: Annotated[float | None, typer.Option("--temperature", min=0.0, help="sampling temperature")] = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    home: HomeOpt = None,
) -> None:
    """Chat with an LLM, streaming its answers; multi-turn. Type /bye or Ctrl-D to leave."""
    server = _Http(url, api_key, home)
    history: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    interactive = not message
    turns = iter(message or [])
    if interactive:
        console.print(f"[dim]chatting with {escape(model)}; /bye or Ctrl-D to leave[/dim]")
    while True:
        try:
            text = console.input("[bold]>>> [/bold]") if interactive else next(turns)
        except (EOFError, StopIteration, KeyboardInterrupt):
            break
        if text.strip() in ("/bye", "/exit", "/quit"):
            break
        if not text.strip():
            continue
        history.append({"role": "user", "content": text})
        body: dict[str, Any] = {"model": model, "messages": history, "stream": True, "max_tokens": max_tokens}
        if temperature is not None:
            body["temperature"] = temperature
        answer = _stream_reply(server, body)
        history.append({"role": "assistant", "content": answer})


def _stream_reply(server: _Http, body: dict[str, Any]) -> str:
    import httpx

    try:
        return _stream(server, body)
    except httpx.HTTPError as e:
        raise server.unreachable(e) from None


def _stream(server: _Http, body: dict[str, Any]) -> str:
    parts: list[str] = []
    with server.http.stream("POST", "/v1/chat/completions", json=body) as r:
        _check(r)
        for line in r.iter_lines():
            if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                continue
            chunk = json.loads(line[5:])
            if "error" in chunk:
                raise _fail(str(chunk["error"].get("message", chunk["error"])))
            for choice in chunk.get("choices", []):
                piece = (choice.get("delta") or {}).get("content") or ""
                parts.append(piece)
                sys.stdout.write(piece)
                sys.stdout.flush()
    sys.stdout.write("\n")
    return "".join(parts)


def ps(
    interval: Annotated[
        float, typer.Option("--interval", min=0.0, help="seconds between the two samples for requests/s (0: skip)")
    ] = 1.0,
    as_json: JsonOpt = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    home: HomeOpt = None,
) -> None:
    """What is loaded now: versions, replicas, memory, requests/s (sampled over --interval)."""
    server = _Http(url, api_key, home, timeout=30)
    first = server("GET", "/v2/resident")
    second = first
    if interval > 0:
        time.sleep(interval)
        second = server("GET", "/v2/resident")
    elapsed = max(second["time"] - first["time"], 1e-9)
    before = {(m["name"], m["version"]): m["inference_count"] for m in first["models"]}
    for m in second["models"]:
        prev = before.get((m["name"], m["version"]))
        m["requests_per_s"] = (
            None if prev is None or second is first else round((m["inference_count"] - prev) / elapsed, 2)
        )
    if as_json:
        console.print_json(json.dumps(second))
        return
    table = Table(title=f"resident on {server.base} (process {_size(second['process_memory_bytes'])})")
    for col in ("model", "ver", "state", "replicas", "memory", "req/s", "requests", "up"):
        width = max((len(m["name"]) for m in second["models"]), default=5) if col == "model" else None
        table.add_column(col, no_wrap=True, min_width=width, justify="left" if col in ("model", "state") else "right")
    for m in second["models"]:
        rate = "-" if m["requests_per_s"] is None else f"{m['requests_per_s']:g}"
        table.add_row(
            m["name"],
            m["version"],
            m["state"],
            str(m["replicas"]),
            _size(m["memory_bytes"]),
            rate,
            str(m["inference_count"]),
            _ago(second["time"] - m["loaded_at"]),
        )
    console.print(table)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _ago(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("infer", help="Same as `aiaas run`.")(run)
    app.command("chat")(chat)
    app.command("ps")(ps)
