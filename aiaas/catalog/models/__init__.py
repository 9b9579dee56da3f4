"""One module per application scenario, each exposing ``SPECS: list[CatalogSpec]``."""
