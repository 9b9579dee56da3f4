from aiaas.batching.batcher import BatchObserver, InferResult, ModelExecutor, ModelStats, release_memory

__all__ = ["BatchObserver", "InferResult", "ModelExecutor", "ModelStats", "release_memory"]
