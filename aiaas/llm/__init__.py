"""Large language models: engines (continuous batching), sampling, text handling, model conversion."""
