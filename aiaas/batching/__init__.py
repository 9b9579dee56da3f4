from aiaas.batching.batcher import BatchObserver, InferResult, ModelExecutor, ModelStats

__all__ = ["BatchObserver", "InferResult", "ModelExecutor", "ModelStats"]
