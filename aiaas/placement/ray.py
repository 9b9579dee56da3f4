"""``placement: ray``: each replica a named Ray Core actor on an existing cluster (not Ray Serve: no proxy).

The server keeps the front door (HTTP, auth, limits, batching); a replica actor gets one ``run`` call per batch.
Actors are named ``<model>:<version>:<fingerprint>:<replica>`` in the deployment's namespace
(``AIAAS_RAY_NAMESPACE``) and detached, so a second aiaas server of the same deployment finds and uses them
instead of starting its own; the fingerprint (config + artifact files) keeps a changed model from reusing old
actors. A server that stops removes the actors it started (the others see them lost and start their own) and
leaves those it reused. Replicas of one version share a placement group (``resources.strategy``: SPREAD or PACK). When a
node
dies Ray restarts its actors where resources allow (``max_restarts=-1``); the batch that was running there
fails with ``ReplicaLost`` and the batcher retries it once on another replica, while this replica waits for its
actor to answer again.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from aiaas.placement import wire
from aiaas.placement.base import Replica, ReplicaLost, decode_error
from aiaas.runtime.base import Tensors
from aiaas.types.model_config import ModelConfig, TensorSpec

log = logging.getLogger("aiaas.placement")
_READY_TIMEOUT_S = 600.0
_SHIP_MAX_BYTES = 512 * 1024 * 1024  # version directories up to this size are shipped to nodes that lack them


class RayCluster:
    """The server's connection to one Ray cluster (``ray.init`` once, in this process)."""

    def __init__(self, address: str, namespace: str) -> None:
        self.address = address
        self.namespace = namespace
        self._lock = threading.Lock()
        self._connected = False
        self._groups: dict[str, Any] = {}  # placement group name -> group
        self._users: dict[str, int] = {}  # placement group name -> replicas of this server using it
        self.shutting_down = False  # the server stops: it removes the actors it started, leaves those it reused
        self.actor_cls: Any = None

    def connect(self) -> Any:
        with self._lock:
            if self._connected:
                import ray

                return ray
            try:
                import ray
            except ImportError:
                raise ValueError("placement 'ray' needs the ray package (pip install 'ray==2.60.0')") from None
            from aiaas.placement.ray_actor import ReplicaActor

            host = self.address.rsplit(":", 1)[0].removeprefix("ray://")
            kw: dict[str, Any] = {}
            if host in ("127.0.0.1", "localhost"):
                kw["_node_ip_address"] = "127.0.0.1"  # keep this driver on loopback too
            path = os.pathsep.join(p for p in sys.path if p)
            ray.init(
                address=self.address,
                namespace=self.namespace,
                log_to_driver=False,
                ignore_reinit_error=True,
                runtime_env={"env_vars": {"PYTHONPATH": path}},
                **kw,
            )
            self.actor_cls = ray.remote(ReplicaActor)
            self._connected = True
            return ray

    def group(self, name: str, bundles: list[dict[str, float]], strategy: str) -> Any:
        """The named placement group of one model version (found, or created detached)."""
        ray = self.connect()
        from ray.util import get_placement_group, placement_group

        with self._lock:
            self._users[name] = self._users.get(name, 0) + 1
            pg = self._groups.get(name)
            if pg is None:
                try:
                    pg = get_placement_group(name)
                except ValueError:
                    pg = placement_group(bundles, strategy=strategy, name=name, lifetime="detached")
                self._groups[name] = pg
        ray.get(pg.ready(), timeout=_READY_TIMEOUT_S)
        return pg

    def release(self, name: str) -> None:
        """One replica of this server no longer uses the group; the last one removes it (unless shutting down)."""
        with self._lock:
            left = self._users.get(name, 0) - 1
            self._users[name] = max(0, left)
            pg = self._groups.pop(name, None) if left <= 0 else None
        if pg is not None:
            from ray.util import remove_placement_group

            try:
                remove_placement_group(pg)
            except Exception as e:  # already gone with the cluster
                log.debug("placement group %s: %s", name, e)


_CLUSTERS: dict[tuple[str, str], RayCluster] = {}


def cluster_for(options: Any) -> RayCluster:
    key = (options.ray_address, options.ray_namespace)
    cluster = _CLUSTERS.get(key)
    if cluster is None:
        cluster = _CLUSTERS[key] = RayCluster(options.ray_address, options.ray_namespace)
    options.extra["ray"] = cluster
    return cluster


def disconnect() -> None:
    """Forget every cluster connection and leave Ray (tests, and a server that shut down)."""
    if _CLUSTERS:
        import ray

        ray.shutdown()
    _CLUSTERS.clear()


def fingerprint(config: ModelConfig, version_dir: Path) -> str:
    h = hashlib.sha1(json.dumps(config.model_dump(mode="json"), sort_keys=True).encode())
    for p in sorted(version_dir.parent.rglob("*")):
        if p.is_file() and (p.parent == version_dir.parent or version_dir in p.parents):
            st = p.stat()
            h.update(f"{p.relative_to(version_dir.parent)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


def _ship(version_dir: Path) -> bytes | None:
    """The version directory and the model directory's own files as a tar, for nodes without shared storage."""
    files = [p for p in version_dir.rglob("*") if p.is_file()] + [
        p for p in version_dir.parent.iterdir() if p.is_file()
    ]
    if sum(p.stat().st_size for p in files) > _SHIP_MAX_BYTES:
        return None
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in files:
            tar.add(p, arcname=f"model/{p.relative_to(version_dir.parent)}")
    return buf.getvalue()


class RayReplica(Replica):
    placement: ClassVar[str] = "ray"

    def __init__(
        self, rid: str, config: ModelConfig, version_dir: Path, cluster: RayCluster, version: int, threads: int = 0
    ) -> None:
        super().__init__(rid, config)
        self.version_dir = version_dir
        self.cluster = cluster
        self.version = version
        self.threads = threads
        fp = fingerprint(config, version_dir)
        self.group_name = f"{config.name}:{version}:{fp}:pg"
        self.actor_name = f"{config.name}:{version}:{fp}:{rid}"
        self.actor: Any = None
        self.reused = False  # found running (started by another server of this deployment)
        self._where = ("?", "?", 0)
        self._signature: tuple[list[TensorSpec], list[TensorSpec]] | None = None
        self._grouped = False
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        ray = self.cluster.connect()
        self._connect(ray)
        self.set_state("ready")

    def _connect(self, ray: Any) -> None:
        try:
            self.actor = ray.get_actor(self.actor_name, namespace=self.cluster.namespace)
            self.reused = True
        except ValueError:
            self.actor = self._create(ray)
            self.reused = False
        error, node_id, ip, pid, sig = ray.get(self.actor.ready.remote(), timeout=_READY_TIMEOUT_S)
        if error:
            ray.kill(self.actor, no_restart=True)
            self.actor = None
            raise ValueError(error)
        doc = json.loads(sig)
        if doc is not None:
            self._signature = ([TensorSpec(**t) for t in doc[0]], [TensorSpec(**t) for t in doc[1]])
        self._where = (node_id, ip, pid)
        self.stats.started_at = time.time()

    def _create(self, ray: Any) -> Any:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        res = self.config.resources
        bundle = {"CPU": max(res.num_cpus, 0.001)}
        if res.num_gpus:
            bundle["GPU"] = res.num_gpus
        if res.memory:
            bundle["memory"] = float(res.memory)
        index = int(self.id[1:]) if self.id[1:].isdigit() else 1 << 30
        strategy: Any = "SPREAD" if res.strategy == "SPREAD" else "DEFAULT"
        if index < self.config.instances:  # the replicas a load starts share the version's placement group
            pg = self.cluster.group(self.group_name, [bundle] * self.config.instances, res.strategy)
            self._grouped = True
            strategy = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=index)
        spec = {
            "config": self.config.model_dump(mode="json"),
            "version_dir": str(self.version_dir),
            "threads": self.threads,
        }
        opts: dict[str, Any] = {
            "name": self.actor_name,
            "namespace": self.cluster.namespace,
            "lifetime": "detached",
            "get_if_exists": True,
            "max_restarts": -1,
            "max_task_retries": 0,
            "max_concurrency": 1,
            "num_cpus": res.num_cpus,
            "num_gpus": res.num_gpus,
            "scheduling_strategy": strategy,
        }
        if res.memory:
            opts["memory"] = res.memory
        return self.cluster.actor_cls.options(**opts).remote(json.dumps(spec).encode(), _ship(self.version_dir))

    def close(self) -> None:
        self._closed = True
        super().close()
        actor, self.actor = self.actor, None
        if self.cluster.shutting_down and self.reused:
            return  # started by another server of this deployment, which still uses it
        if actor is not None:
            import ray

            try:
                ray.kill(actor, no_restart=True)
            except Exception as e:
                log.debug("replica %s: %s", self.actor_name, e)
        if self._grouped:
            self.cluster.release(self.group_name)

    def signature(self) -> tuple[list[TensorSpec], list[TensorSpec]] | None:
        return self._signature

    def node(self) -> tuple[str, str]:
        return self._where[0], self._where[1]

    def pid(self) -> int | None:
        return self._where[2] or None

    def info(self) -> dict[str, Any]:
        return {**super().info(), "actor": self.actor_name, "reused": self.reused}

    # -- a batch --------------------------------------------------------------------------------
    def predict(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        import ray
        from ray.exceptions import RayError

        actor = self.actor
        if actor is None or self.state != "ready":
            raise ReplicaLost(f"model {self.config.name!r}: replica {self.id} is {self.state}", suspect=False)
        header, data = wire.pack(inputs)
        params = json.dumps(parameters).encode() if parameters else b""
        try:
            kind, out_header, out_data = ray.get(actor.run.remote(params, header, data))
        except RayError as e:
            raise self._lost(e) from None
        if kind == b"E":
            raise decode_error(out_header)
        return wire.unpack(out_header, out_data)

    def _lost(self, error: BaseException) -> ReplicaLost:
        node = self._where[0]
        self.stats.last_error = f"actor on node {node[:12]} lost: {type(error).__name__}: {str(error)[:200]}"
        self.set_state("restarting")
        log.error(
            "model %r replica %s: %s; waiting for Ray to recreate it", self.config.name, self.id, self.stats.last_error
        )
        threading.Thread(target=self._recover, name=f"aiaas-ray-{self.id}", daemon=True).start()
        return ReplicaLost(
            f"model {self.config.name!r}: its Ray replica {self.id} on node {node[:12]} was lost while running this "
            "request; the replica is being recreated",
            suspect=False,
        )

    def _recover(self) -> None:
        import ray

        delay = 0.2
        while not self._closed and not self.retiring:
            try:
                self._connect(ray)
            except Exception as e:  # still being recreated (or gone: _connect creates it again)
                log.debug("replica %s not back yet: %s", self.actor_name, e)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.stats.restarts += 1
            self.set_state("ready")
            return
