from aiaas.batching.batcher import ModelExecutor
from aiaas.batching.items import InferResult
from aiaas.batching.stats import BatchObserver, ModelStats

__all__ = ["BatchObserver", "InferResult", "ModelExecutor", "ModelStats"]
