"""Serving-side classes of catalog models (python backend), importable so they are tested like any code.

A catalog build writes ``parameters: {class: "aiaas.catalog.runtime.<module>:<Class>"}`` into the model's
config. Modules are named by scenario (``nlp_*``, ``speech_*``, ``vision_*``, ...) so scenarios don't collide.
"""
