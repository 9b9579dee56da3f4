"""Alias: the spec types moved to the public plug-in interface, ``aiaas.registry.catalogspec``; this module keeps
``from aiaas.catalog.base import CatalogSpec`` (tests, scripts, third-party catalogs) working."""

from aiaas.registry.catalogspec import (
    BuildContext,
    BuildResult,
    CatalogSpec,
    Floor,
    Progress,
    Requirement,
    timed,
)

__all__ = ["BuildContext", "BuildResult", "CatalogSpec", "Floor", "Progress", "Requirement", "timed"]
