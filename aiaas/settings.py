"""All configuration of aiaas, read from the environment (prefix ``AIAAS_``) and nowhere else.

Every setting is listed here with a comment; ``aiaas serve --help`` shows the flags that override them.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIAAS_", extra="ignore")

    @field_validator("log_level", "governance", "budget_mode", "redis_failure_mode", "python_placement", mode="before")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        """Enum-like settings accept any case and surrounding spaces (``AIAAS_LOG_LEVEL=INFO``)."""
        return value.strip().lower() if isinstance(value, str) else value

    # --- where things live -------------------------------------------------------------------------
    home: Path = Field(default_factory=lambda: Path.home() / ".aiaas")  # models/, the database, logs, admin.key
    database_url: str | None = None  # SQLAlchemy URL; None -> SQLite at $AIAAS_HOME/aiaas.db
    redis_url: str | None = None  # share rate limits between replicas through Redis (e.g. redis://127.0.0.1:6379/0)

    # --- network -----------------------------------------------------------------------------------
    host: str = "127.0.0.1"  # interface the server binds
    port: int = 8000  # TCP port the server binds
    admin_key: str | None = None  # bootstrap admin key; generated into $AIAAS_HOME/admin.key when unset
    metrics_require_key: bool = False  # True -> /metrics needs a valid key like the model endpoints
    max_request_bytes: int = 64 * 1024 * 1024  # larger request bodies are refused with 413
    graceful_shutdown_s: float = 30.0  # SIGTERM: how long in-flight requests may take to finish
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = "info"  # uvicorn / aiaas log level
    access_log: bool = False  # per-request access log lines (costs CPU on the hot path)
    # How long a Python thread may hold the GIL while another waits (sys.setswitchinterval; CPython's default is
    # 5 ms). A model thread whose onnxruntime call has finished needs the GIL for a few microseconds to hand its
    # batch back; with the default it can sit idle for up to 5 ms behind the event loop parsing requests.
    gil_switch_interval_ms: float = Field(default=0.5, gt=0, le=100)

    # --- governance (tenants, keys, limits, budgets, usage) -------------------------------------------
    governance: Literal["db", "off"] = (
        "db"  # db: tenants and keys in the database | off: only the bootstrap admin key, no metering
    )
    key_cache_ttl_s: float = 5.0  # API keys are cached this long; a revocation via another process lands within it
    governance_refresh_s: float = 5.0  # how often ownership, grants, limits and budgets are re-read
    usage_flush_s: float = 1.0  # usage rows are buffered and written this often (and at shutdown)
    budget_mode: Literal["auto", "memory", "db"] = (
        "auto"  # auto | memory (one process per database) | db (atomic UPDATE; several replicas)
    )
    redis_prefix: str = "aiaas:rl:"  # key prefix of the shared rate limits in Redis
    concurrency_lease_s: float = 600.0  # a concurrency slot held by a crashed replica frees itself after this

    # --- models ------------------------------------------------------------------------------------
    catalog: str = "all"  # built-in catalog models to build and serve: all | none | name,name,...
    catalog_quick: bool = False  # build catalog models in quick mode (few epochs, small data), as CI does
    load_on_start: bool = True  # load every model found in the repository when the server starts
    default_intra_op_threads: int = 0  # onnxruntime threads per instance when a model sets none (0 = runtime default)
    repository_poll_s: float = 0.0  # > 0: rescan the repository this often and load new models (0 = off)

    # --- training ----------------------------------------------------------------------------------
    max_upload_bytes: int = 1024 * 1024 * 1024  # POST /v1/files: larger uploads are refused with 413 (streamed to disk)
    training_cores: int = 0  # cores training jobs may use together (workers x threads); 0 = os.cpu_count()
    # optimizations: a candidate must be at least this fast as its baseline at the serving batch (p50) to be accepted,
    # unless the request sets criterion.min_speedup (0 = any speed). int8 on a CPU without fast int8 kernels can be
    # several times slower; 0.8 leaves room for timing noise around passes that do not change speed.
    optimize_min_speedup: float = Field(default=0.8, ge=0)

    # --- hardening: what one request may cost -----------------------------------------------------------
    # body limits per route family, enforced while the body is read (413 before parsing or authentication);
    # V2 infer bodies use max_request_bytes above, POST /v1/files uses max_upload_bytes
    max_openai_request_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)  # /v1/completions, chat, embeddings, audio
    max_control_request_bytes: int = Field(default=1024 * 1024, ge=1024)  # every other route with a body
    max_tensor_elements: int = Field(default=1 << 26, ge=1)  # per input tensor; larger declared shapes are refused
    # infer bodies at least this large are decoded (JSON -> tensors) in a worker thread, so that health checks and
    # small requests keep being answered while a big one is parsed; smaller ones are decoded inline (fast path)
    offload_decode_bytes: int = Field(default=256 * 1024, ge=0)
    max_upload_columns: int = Field(default=10_000, ge=1)  # columns (CSV/JSONL/Parquet) or arrays (NPZ) of an upload
    max_upload_nesting: int = Field(default=32, ge=1)  # JSONL: deepest nesting of a value
    upload_validation_s: float = Field(default=600.0, gt=0)  # CPU time an upload's validation may take

    # --- resilience: dependencies down, abuse that costs the server (docs/resilience.md) -------------
    redis_timeout_s: float = Field(
        default=1.0, gt=0
    )  # Redis socket timeout (connect, command); a call is cut at twice this: Redis down
    redis_failure_mode: Literal["closed", "open"] = (
        "closed"  # Redis down: closed -> keys with shared limits get 503 | open -> per-process limits (logged)
    )
    redis_retry_s: float = Field(
        default=1.0, gt=0
    )  # after a Redis failure, requests fail fast this long before one probes again
    auth_failures_per_minute: int = Field(
        default=60, ge=0
    )  # invalid keys one client address may send per minute, then 429 (0 = no limit)
    negative_key_cache_size: int = Field(
        default=10_000, ge=0
    )  # unknown key ids remembered (no database lookup while cached)
    negative_key_cache_ttl_s: float = Field(default=10.0, ge=0)  # how long an unknown key id is remembered
    usage_retention_days: float = Field(
        default=30.0, ge=0
    )  # raw usage rows older than this are deleted; hourly totals keep /v1/usage exact (0 = keep)
    usage_rollup_interval_s: float = Field(default=3600.0, gt=0)  # how often raw usage rows past retention are deleted

    # --- placement (model replicas in worker processes and on a Ray cluster; docs/cluster.md) ---
    python_placement: Literal["thread", "process"] = "process"  # placement: auto for python models
    ray_address: str | None = None  # Ray cluster for placement: ray and multi-node training (e.g. 127.0.0.1:6380)
    ray_namespace: str = "aiaas"  # Ray namespace of this deployment: servers sharing it share replica actors

    # --- gRPC and TLS --------------------------------------------------------------------------------
    # KServe V2 over gRPC (Triton's inference.GRPCInferenceService) on this port, beside REST, in the same process;
    # 0 = off (the default: a second listening port is an explicit choice; Triton's convention is 8001)
    grpc_port: int = Field(default=0, ge=0, le=65535)
    grpc_max_message_bytes: int = 0  # largest gRPC message accepted; 0 = max_request_bytes + 1 MiB of framing
    # grpc.aio servers sharing the gRPC port (SO_REUSEPORT): each accepts calls on its own, so many connections'
    # requests reach the batcher together instead of one per trip of a single server's accept loop
    grpc_listeners: int = Field(default=8, ge=1, le=64)
    ssl_certfile: Path | None = None  # PEM certificate (chain): serve HTTPS and gRPC over TLS; plain text is refused
    ssl_keyfile: Path | None = None  # PEM private key of ssl_certfile
    ssl_ca_certs: Path | None = None  # PEM CA bundle: clients must present a certificate it signed (mutual TLS)

    # --- first hour: readiness, logs, tracing (issue 16) ------------------------------------------------
    # /v2/health/ready answers 200 only once every model in the repository (and every selected catalog model)
    # is READY, as Triton's --strict-readiness; off: ready as soon as the server has started (models may load)
    strict_readiness: bool = False
    # text | json: JSON lines (ts, level, logger, msg, request_id, access fields) on stderr. json or access_log
    # gives every request an id (x-request-id, echoed) carried by its log lines, and one access line per request
    log_format: Literal["text", "json"] = "text"
    # OTLP/HTTP collector (e.g. http://127.0.0.1:4318): a span per request with queue/batch/model children;
    # "" = no tracing (needs the otel extra)
    otel_endpoint: str = ""

    # --- web console (/ui) ---
    ui: bool = True  # serve the web console at /ui (needs governance "db": its sessions live in the database)
    ui_session_ttl_s: float = Field(default=8 * 3600, gt=0)  # a console sign-in lasts this long, then asks again

    # --- llm engines ---
    # decode threads of LLM engines whose model.yaml sets none (0 = every core this process may use; under load an
    # engine drops to one fewer so the HTTP path keeps a core: parameters busy_threads / busy_streams)
    llm_threads: int = Field(default=0, ge=0)

    # --- serving internals ---
    # 1 = the V2 infer fast path (server/fastpath.py: infer requests skip FastAPI's routing, one write per response;
    # leans on pinned framework internals, and turns itself off if they changed); 0 = plain FastAPI routing and
    # uvicorn's stock protocol, no framework internals touched. Responses are the same bytes either way.
    fast_path: bool = True

    @cached_property
    def models_dir(self) -> Path:
        return self.home / "models"

    @cached_property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @cached_property
    def torch_extensions_dir(self) -> Path:
        """TORCH_EXTENSIONS_DIR of training jobs: DeepSpeed (strategy zero) compiles its CPU ops here once."""
        return self.home / "torch_extensions"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'aiaas.db'}"

    def catalog_names(self) -> list[str] | None:
        """None means every catalog model; an empty list means none."""
        value = self.catalog.strip().lower()
        if value in ("", "none", "off", "0", "false"):
            return []
        if value == "all":
            return None
        return [n.strip() for n in self.catalog.split(",") if n.strip()]
