"""Pydantic wire models: the model config file and the KServe V2 protocol."""
