"""A small Python client for aiaas (KServe V2 + repository), testable in-process through httpx transports.

    from aiaas.client import Client
    c = Client("http://127.0.0.1:8000", api_key="...")
    out = c.infer("mlp", {"x": np.ones((2, 4), np.float32)})["y"]

Imports only ``aiaas.types`` and ``aiaas.errors``.
"""

from aiaas.client.v2 import Client, ClientError

__all__ = ["Client", "ClientError"]
