"""Which placement a model gets, and building its replicas."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiaas.placement.base import Replica
from aiaas.placement.process import ProcessReplica
from aiaas.placement.thread import ThreadReplica
from aiaas.runtime.base import RuntimeContext, backend_class
from aiaas.types.model_config import ModelConfig

_IN_PROCESS_ONLY = ("pipeline", "llm")  # run on the event loop or stream from an in-process engine


@dataclass
class PlacementOptions:
    python_placement: str = "process"  # what ``placement: auto`` means for python-backend models
    ray_address: str | None = None  # where ``placement: ray`` replicas live (None: refused)
    ray_namespace: str = "aiaas"  # Ray namespace of this deployment's named replica actors
    extra: dict[str, Any] = field(default_factory=dict)  # the connected Ray cluster, once used


def resolve(config: ModelConfig, version_dir: Path, options: PlacementOptions) -> str:
    """The placement ``config`` runs with; a clear error when it asks for one its backend cannot use."""
    in_process = config.backend in _IN_PROCESS_ONLY or _stays_in_process(config, version_dir)
    if config.placement == "auto":
        if config.backend == "python" and not in_process:
            return options.python_placement
        return "thread"
    if config.placement != "thread" and in_process:
        raise ValueError(
            f"placement {config.placement!r} is not available for this model: backend {config.backend!r} runs on "
            "the server's event loop (pipelines, LLMs and async python models); use placement: thread"
        )
    if config.placement == "ray" and not options.ray_address:
        raise ValueError(
            "placement 'ray' needs a Ray cluster: start the server with --ray-address or AIAAS_RAY_ADDRESS "
            "(see docs/cluster.md)"
        )
    return config.placement


def on_loop(config: ModelConfig, version_dir: Path) -> bool:
    """Whether ``config``'s model runs on the event loop: one instance serves every request, in this process."""
    try:
        return backend_class(config.backend).on_loop(config, version_dir)
    except Exception:
        return False  # a python class that does not import: the replica reports the error with its load


def _stays_in_process(config: ModelConfig, version_dir: Path) -> bool:
    """A model on the event loop, or a python model that streams, stays in the server (the user's class is
    imported once for both questions)."""
    if config.backend != "python":
        return on_loop(config, version_dir)
    from aiaas.runtime.base import Model
    from aiaas.runtime.python import resolve_class, user_on_loop

    try:
        cls = resolve_class(str(config.parameters.get("class", "")), version_dir)
    except Exception:
        return False  # the worker reports the import error with its load
    return user_on_loop(cls, config, version_dir) or cls.predict_stream is not Model.predict_stream


def make_replica(
    rid: str,
    placement: str,
    config: ModelConfig,
    version_dir: Path,
    context: RuntimeContext,
    options: PlacementOptions,
    version: int = 1,
) -> Replica:
    """A replica that is not started yet (``start()`` loads it)."""
    if placement == "process":
        return ProcessReplica(rid, config, version_dir, context.default_intra_op_threads)
    if placement == "ray":
        from aiaas.placement.ray import RayReplica, cluster_for

        return RayReplica(rid, config, version_dir, cluster_for(options), version, context.default_intra_op_threads)
    return ThreadReplica(rid, backend_class(config.backend)(config, version_dir, context))
