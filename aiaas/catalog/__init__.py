"""The built-in scenario catalog: real models, trained or exported by aiaas, each with a measured card.

A plug-in (``aiaas.catalog.plugin:BuiltinCatalog``, entry point group ``aiaas.catalog``): the server, the console
and the CLI find it through ``aiaas.registry.plugins`` and never import this package; it is written over the
public interfaces only (``aiaas.runtime.Model``, the repository, the model card types). One module per model under
``models/`` (spec, build, evaluation), its assets under ``models/assets/``, its serving class under ``runtime/``."""
