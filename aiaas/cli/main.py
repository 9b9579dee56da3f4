"""The ``aiaas`` command line: serve, and manage the model repository."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from aiaas.cli.lazy import LazyGroup, from_attr, from_register
from aiaas.cli.output import JsonOpt, print_json
from aiaas.errors import AiaasError

if TYPE_CHECKING:
    from aiaas.settings import Settings


class _Commands(LazyGroup):
    """Top-level commands defined in other modules, imported when they run (fast ``--help`` and listings)."""

    lazy = {
        "run": (from_register("aiaas.cli.run", "run"), "Run a model on some input and print its answer."),
        "infer": (from_register("aiaas.cli.run", "infer"), "Same as `aiaas run`."),
        "chat": (from_register("aiaas.cli.run", "chat"), "Chat with an LLM, streaming its answers; multi-turn."),
        "ps": (from_register("aiaas.cli.run", "ps"), "What is loaded now: versions, replicas, memory, requests/s."),
        "catalog": (from_attr("aiaas.cli.catalog", "catalog_app"), "The built-in scenario catalog."),
        "tenants": (from_register("aiaas.cli.governance", "tenants"), "Manage tenants."),
        "keys": (from_register("aiaas.cli.governance", "keys"), "Manage API keys."),
        "usage": (from_register("aiaas.cli.governance", "usage"), "Show metered usage and cost."),
        "audit": (from_register("aiaas.cli.governance", "audit"), "Show the audit trail, newest first."),
        "files": (from_attr("aiaas.cli.jobs", "files_app"), "Upload and manage training files."),
        "jobs": (from_attr("aiaas.cli.jobs", "jobs_app"), "Training jobs: create, list, show, cancel, watch."),
        "optimize": (
            from_register("aiaas.cli.optimize", "optimize", with_models=True),
            "Optimize a model: passes, measured against the baseline, gated, registered.",
        ),
        "optimizations": (
            from_register("aiaas.cli.optimize", "optimizations", with_models=True),
            "Optimization jobs: list, show, cancel, watch.",
        ),
    }


class _ModelsCommands(LazyGroup):
    lazy = {
        "replicas": (
            from_register("aiaas.cli.replicas", "replicas", group="models", with_models=True),
            "A model's replicas: placement, node, pid, state, batches, restarts, last error.",
        ),
        "scale": (
            from_register("aiaas.cli.replicas", "scale", group="models", with_models=True),
            "Change a model's replica count without dropping a request.",
        ),
        "compare": (
            from_register("aiaas.cli.optimize", "compare", group="models", with_models=True),
            "Measure two versions of a model against each other (the optimization gate).",
        ),
    }


app = typer.Typer(
    help="aiaas: AI models as a service.", no_args_is_help=True, pretty_exceptions_enable=False, cls=_Commands
)
models_app = typer.Typer(help="Manage the model repository.", no_args_is_help=True, cls=_ModelsCommands)
app.add_typer(models_app, name="models")


def _version(value: bool) -> None:
    if value:
        from aiaas import __version__

        typer.echo(f"aiaas {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """aiaas: AI models as a service."""


console = Console()
err_console = Console(stderr=True)

HomeOpt = Annotated[Path | None, typer.Option("--home", help="aiaas home (models, database, logs); env AIAAS_HOME")]


def settings_for(home: Path | None, **overrides: Any) -> Settings:
    from aiaas.settings import Settings

    if home is not None:
        overrides["home"] = home
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {escape(message)}")  # messages quote user text and [extras]
    return typer.Exit(code)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="interface to bind; env AIAAS_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="port to bind; env AIAAS_PORT")] = None,
    home: HomeOpt = None,
    catalog: Annotated[
        str | None, typer.Option(help="catalog models to serve: all | none | name,...; env AIAAS_CATALOG")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster for placement: ray (host:port of its GCS); env AIAAS_RAY_ADDRESS")
    ] = None,
    grpc_port: Annotated[
        int | None, typer.Option(help="KServe V2 gRPC port (e.g. 8001; 0 = off, the default); env AIAAS_GRPC_PORT")
    ] = None,
    ssl_certfile: Annotated[
        Path | None, typer.Option(help="PEM certificate: HTTPS and gRPC over TLS only; env AIAAS_SSL_CERTFILE")
    ] = None,
    ssl_keyfile: Annotated[
        Path | None, typer.Option(help="PEM private key of --ssl-certfile; env AIAAS_SSL_KEYFILE")
    ] = None,
    ssl_ca_certs: Annotated[
        Path | None, typer.Option(help="PEM CA bundle: require client certificates (mTLS); env AIAAS_SSL_CA_CERTS")
    ] = None,
) -> None:
    """Run the server."""
    from aiaas.server.adminkey import ensure_admin_key
    from aiaas.server.run import check_port
    from aiaas.server.run import serve as run
    from aiaas.server.tls import tls_from

    settings = settings_for(
        home,
        host=host,
        port=port,
        catalog=catalog,
        ray_address=ray_address,
        grpc_port=grpc_port,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        ssl_ca_certs=ssl_ca_certs,
    )
    try:
        tls = tls_from(settings)
    except AiaasError as e:
        raise fail(e.message, 2) from None
    problem = check_port(settings.host, settings.port)  # at once, not after every model has loaded
    if problem:
        raise fail(problem)
    key = ensure_admin_key(settings)
    if key.generated:
        console.print(
            f"[bold]Admin key[/bold] (shown once; saved to {key.path}, mode 0600):\n  [green]{key.key}[/green]"
        )
    elif key.path:
        console.print(f"Admin key: in {key.path}")
    scheme = "https" if tls else "http"
    console.print(f"aiaas serving {settings.models_dir} on {scheme}://{settings.host}:{settings.port}")
    if settings.grpc_port:
        console.print(f"KServe V2 gRPC on {'grpcs' if tls else 'grpc'}://{settings.host}:{settings.grpc_port}")
    raise typer.Exit(run(settings))


# -- models ---------------------------------------------------------------------------------------
def _client(settings: Settings, url: str | None) -> Any:
    from aiaas.client import Client
    from aiaas.server.adminkey import read_admin_key

    key = read_admin_key(settings)
    return Client(url or f"http://{settings.host}:{settings.port}", api_key=key.key if key else None, timeout=300)


UrlOpt = Annotated[str | None, typer.Option("--url", help="server URL (default http://AIAAS_HOST:AIAAS_PORT)")]


@models_app.command("import")
def models_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="an .onnx file, a Keras model (.keras, .h5) or a TensorFlow SavedModel directory (converted with "
            "tf2onnx; needs the tf extra)",
            exists=True,
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="model name")],
    version: Annotated[int | None, typer.Option("--version", help="version number (default: next)")] = None,
    max_batch_size: Annotated[
        int, typer.Option(help="dynamic batching limit when the graph has a dynamic batch axis")
    ] = 64,
    home: HomeOpt = None,
    url: UrlOpt = None,
    load: Annotated[bool, typer.Option(help="ask a running server to load it now")] = True,
) -> None:
    """Add an ONNX model (config written from the graph) as a new version; TensorFlow models are converted first."""
    from aiaas.registry import ModelRepository
    from aiaas.registry.onnx_import import import_onnx
    from aiaas.registry.tf_import import import_tensorflow, is_tensorflow_source

    settings = settings_for(home)
    repo = ModelRepository(settings.models_dir)
    repo.ensure()
    try:
        if file.is_dir() or is_tensorflow_source(file):
            console.print(f"converting {escape(file.name)} to ONNX with tf2onnx ...")
            config, v = import_tensorflow(repo, file, name, version, max_batch_size)
        else:
            config, v = import_onnx(repo, file, name, version, max_batch_size)
    except AiaasError as e:
        raise fail(e.message) from None
    console.print(f"imported [bold]{name}[/bold] version {v} into {repo.path(name)}")
    for t in config.inputs:
        console.print(f"  input  {t.name}: {t.datatype} {t.shape}")
    for t in config.outputs:
        console.print(f"  output {t.name}: {t.datatype} {t.shape}")
    console.print(f"  dynamic batching: {'up to ' + str(config.max_batch_size) if config.max_batch_size else 'off'}")
    if load:
        try:
            _client(settings, url).load_model(name)
            console.print("  loaded by the running server")
        except Exception as e:
            console.print(f"  [dim]not loaded now ({_short(e)}); the server loads it at start[/dim]")


def _short(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:160]


@models_app.command("list")
def models_list(home: HomeOpt = None, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Models with their versions and states (live from the server when it runs, else checked on disk)."""
    # not httpx, aiaas.client (numpy) nor Settings (pydantic-settings): the listing starts fast
    from aiaas.cli.http import call, local

    server = local(home)
    rows: list[dict[str, Any]] = []
    source = "server"
    r = call(url or server.url, "POST", "/v2/repository/index", body={}, key=server.admin_key, timeout=300)
    if r is not None and r.status >= 400:  # the server answered (e.g. 401): say so rather than pretend it is down
        raise fail(f"HTTP {r.status}: {r.error_message()}")
    if r is not None:
        rows = r.body
    else:
        from aiaas.registry import ModelRepository

        source = "repository (server not reachable)"
        rows = []
        for entry in ModelRepository(settings_for(home).models_dir).scan():
            if entry.config is None or entry.error:
                rows.append({"name": entry.name, "version": "", "state": "UNAVAILABLE", "reason": entry.error or ""})
            for v in entry.served_versions if not entry.error else []:
                rows.append({"name": entry.name, "version": str(v), "state": "NOT LOADED", "reason": ""})
    if as_json:
        return print_json(rows)
    table = Table(title=f"models ({source})")
    for col in ("name", "version", "state", "reason"):
        table.add_column(col)
    for row in rows:
        color = {"READY": "green", "UNAVAILABLE": "red"}.get(row["state"], "yellow")
        table.add_row(
            row["name"], str(row.get("version", "")), f"[{color}]{row['state']}[/{color}]", row.get("reason", "")
        )
    console.print(table)


@models_app.command("load")
def models_load(name: str, home: HomeOpt = None, url: UrlOpt = None) -> None:
    """Load (or reload) a model on the running server."""
    try:
        _client(settings_for(home), url).load_model(name)
    except Exception as e:
        raise fail(_short(e)) from None
    console.print(f"{name}: READY")


@models_app.command("unload")
def models_unload(name: str, home: HomeOpt = None, url: UrlOpt = None) -> None:
    """Unload a model on the running server (in-flight requests finish first)."""
    try:
        _client(settings_for(home), url).unload_model(name)
    except Exception as e:
        raise fail(_short(e)) from None
    console.print(f"{name}: unloaded")


@models_app.command("remove")
def models_remove(
    name: str,
    version: Annotated[int | None, typer.Option("--version", help="remove only this version")] = None,
    home: HomeOpt = None,
    url: UrlOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Delete a model (or one version) from the repository, unloading it first if a server runs."""
    from aiaas.registry import ModelRepository

    settings = settings_for(home)
    what = f"{name} version {version}" if version else f"{name} (all versions)"
    if not yes and not typer.confirm(f"remove {what}?"):
        raise typer.Exit(1)
    client = _client(settings, url)
    with contextlib.suppress(Exception):  # not running or not loaded: nothing to drain
        client.unload_model(name)
    try:
        ModelRepository(settings.models_dir).remove(name, version)
    except AiaasError as e:
        raise fail(e.message) from None
    if version is not None:
        with contextlib.suppress(Exception):  # reload what is left; no server is fine
            client.load_model(name)
    console.print(f"removed {what}")


def main() -> None:  # pragma: no cover
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from aiaas.cli.errors import run_without_traceback

    run_without_traceback(app)


if __name__ == "__main__":  # pragma: no cover -- `python -m aiaas.cli.main` (tests start the server this way)
    main()
