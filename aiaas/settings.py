"""All configuration of aiaas, read from the environment (prefix ``AIAAS_``) and nowhere else.

Every setting is listed here with a comment; ``aiaas serve --help`` shows the flags that override them.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIAAS_", extra="ignore")

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
    log_level: str = "info"  # uvicorn / aiaas log level
    access_log: bool = False  # per-request access log lines (costs CPU on the hot path)
    # How long a Python thread may hold the GIL while another waits (sys.setswitchinterval; CPython's default is
    # 5 ms). A model thread whose onnxruntime call has finished needs the GIL for a few microseconds to hand its
    # batch back; with the default it can sit idle for up to 5 ms behind the event loop parsing requests.
    gil_switch_interval_ms: float = Field(default=0.5, gt=0, le=100)

    # --- governance (tenants, keys, limits, budgets, usage) -------------------------------------------
    governance: str = "db"  # db: tenants and keys in the database | off: only the bootstrap admin key, no metering
    key_cache_ttl_s: float = 5.0  # API keys are cached this long; a revocation via another process lands within it
    governance_refresh_s: float = 5.0  # how often ownership, grants, limits and budgets are re-read
    usage_flush_s: float = 1.0  # usage rows are buffered and written this often (and at shutdown)
    budget_mode: str = "auto"  # auto | memory (one process per database) | db (atomic UPDATE; several replicas)
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

    # --- llm engines ---
    # decode threads of LLM engines whose model.yaml sets none (0 = every core this process may use; under load an
    # engine drops to one fewer so the HTTP path keeps a core: parameters busy_threads / busy_streams)
    llm_threads: int = Field(default=0, ge=0)

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
