from aiaas.registry.repository import ModelEntry, ModelRepository

__all__ = ["ModelEntry", "ModelRepository"]
