"""The Ray actor that holds one model replica (``placement: ray``), one ``run`` call per batch.

Tensors cross as the same raw buffers as for worker processes (``wire``: a struct-packed header and the bytes);
the spec is written by the server from model.yaml. The constructor never raises: a model that cannot load
reports why through ``ready`` and the server kills the actor, so Ray does not restart it in a loop.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from aiaas.placement import wire
from aiaas.placement.base import encode_error


class ReplicaActor:
    def __init__(self, spec: bytes, files: bytes | None) -> None:
        self.model: Any = None
        self.error = ""
        self.signature: Any = None
        try:
            self._load(json.loads(spec), files)
        except Exception as e:
            self.error = f"{type(e).__name__}: {e}"

    def _load(self, spec: dict[str, Any], files: bytes | None) -> None:
        from aiaas.runtime.base import RuntimeContext, backend_class, predict_blocking
        from aiaas.types.model_config import ModelConfig

        config = ModelConfig.model_validate(spec["config"])
        vdir = Path(spec["version_dir"])
        if not vdir.is_dir():  # another machine without the shared model repository: use the shipped copy
            if files is None:
                raise FileNotFoundError(f"{vdir} is not on node and no copy of it was shipped")
            root = Path(tempfile.mkdtemp(prefix="aiaas-replica-"))
            with tarfile.open(fileobj=io.BytesIO(files)) as tar:
                tar.extractall(root, filter="data")
            vdir = root / "model" / vdir.name
        model = backend_class(config.backend)(config, vdir, RuntimeContext(default_intra_op_threads=spec["threads"]))
        model.load()
        sig = model.signature()
        self.signature = None if sig is None else [[t.model_dump() for t in sig[0]], [t.model_dump() for t in sig[1]]]
        self.model = model
        self.predict = predict_blocking  # imported here, like the runtime, when the actor starts

    def ready(self) -> tuple[str, str, str, int, str]:
        """(error or "", node id, node ip, pid, signature JSON)."""
        import ray

        ctx = ray.get_runtime_context()
        ip = ray.util.get_node_ip_address()
        return self.error, ctx.get_node_id(), ip, os.getpid(), json.dumps(self.signature)

    def run(self, params: bytes, header: bytes, data: bytes) -> tuple[bytes, bytes, bytes]:
        """One batch: (b"K", header, data) or (b"E", message, b"")."""
        try:
            inputs = wire.unpack(header, data)
            outputs = self.predict(self.model, inputs, json.loads(params) if params else {})
            out_header, out_data = wire.pack(outputs)
        except Exception as e:
            return b"E", encode_error(e), b""
        return b"K", out_header, out_data
