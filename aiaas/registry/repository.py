"""The versioned model repository on disk (Triton's layout).

    models/<name>/model.yaml     config (aiaas.types.model_config.ModelConfig)
    models/<name>/<version>/     artifacts of one integer version

Reading never raises for a broken model: the entry carries the reason, so the server marks that model
UNAVAILABLE and keeps serving every other one. Writes go to a temporary directory first and are renamed into
place, so an interrupted import never leaves a half-written version behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from aiaas.errors import Conflict, InvalidInput, NotFound
from aiaas.types.model_config import ModelConfig, check_name

CONFIG_FILE = "model.yaml"

log = logging.getLogger("aiaas.registry")


@dataclass(slots=True)
class ModelEntry:
    name: str
    path: Path
    config: ModelConfig | None  # None when the config is missing or invalid
    versions: list[int]  # all integer version directories, ascending
    error: str | None = None  # why the config cannot be used

    @property
    def served_versions(self) -> list[int]:
        return self.config.version_policy.select(self.versions) if self.config else []


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def format_validation_error(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "config"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def parse_config(text: str, name: str) -> ModelConfig:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"{CONFIG_FILE} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{CONFIG_FILE} must be a mapping with at least 'backend'")
    try:
        config = ModelConfig.model_validate(raw)
    except ValidationError as e:
        raise ValueError(f"invalid {CONFIG_FILE}: {format_validation_error(e)}") from None
    if config.name is not None and config.name != name:
        raise ValueError(f"{CONFIG_FILE} names the model {config.name!r} but its directory is {name!r}")
    return config.model_copy(update={"name": name})


class ModelRepository:
    def __init__(self, root: Path) -> None:
        self.root = root

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def names(self) -> list[str]:
        """Model directories with a config. A directory whose name is not a valid model name (made by hand)
        is skipped with a warning: it cannot be addressed by any API, and reading it must not stop the server."""
        if not self.root.is_dir():
            return []
        found = []
        for p in self.root.iterdir():
            if not p.is_dir() or p.name.startswith(".") or not (p / CONFIG_FILE).exists():
                continue
            try:
                check_name(p.name)
            except ValueError as e:
                log.warning("ignoring %s: %s", p, e)
                continue
            found.append(p.name)
        return sorted(found)

    def path(self, name: str) -> Path:
        try:
            check_name(name)
        except ValueError as e:
            raise InvalidInput(str(e)) from None
        return self.root / name

    def exists(self, name: str) -> bool:
        return (self.path(name) / CONFIG_FILE).is_file()

    def read(self, name: str) -> ModelEntry:
        path = self.path(name)
        cfg_path = path / CONFIG_FILE
        if not cfg_path.is_file():
            raise NotFound(f"model {name!r} is not in the repository")
        versions = sorted(int(p.name) for p in path.iterdir() if p.is_dir() and p.name.isdigit())
        try:
            config = parse_config(cfg_path.read_text(encoding="utf-8"), name)
        except (ValueError, OSError, UnicodeDecodeError) as e:
            return ModelEntry(name, path, None, versions, str(e))
        error = None
        if not versions and config.backend != "pipeline":
            error = f"no version directories (e.g. {path}/1/) with artifacts"
        return ModelEntry(name, path, config, versions, error)

    def scan(self) -> list[ModelEntry]:
        return [self.read(n) for n in self.names()]

    def version_dir(self, name: str, version: int) -> Path:
        return self.path(name) / str(version)

    # -- writes ---------------------------------------------------------------------------------
    def write_config(self, name: str, config: ModelConfig | dict[str, Any]) -> Path:
        data = config.model_dump(exclude_defaults=True, exclude={"name"}) if isinstance(config, ModelConfig) else config
        # plain JSON types only (numpy scalars and str subclasses from training code would break safe YAML)
        data = json.loads(json.dumps(data, default=_plain))
        path = self.path(name)
        path.mkdir(parents=True, exist_ok=True)
        target = path / CONFIG_FILE
        fd, tmp = tempfile.mkstemp(dir=path, prefix=".model.yaml.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yaml.safe_dump(data, f, sort_keys=False)
        os.replace(tmp, target)
        return target

    def add_version(self, name: str, files: dict[str, Path], version: int | None = None) -> int:
        """Copy artifact files into a new version directory atomically; returns the version number."""
        path = self.path(name)
        path.mkdir(parents=True, exist_ok=True)
        existing = [int(p.name) for p in path.iterdir() if p.is_dir() and p.name.isdigit()]
        if version is None:
            version = max(existing, default=0) + 1
        if version < 1:
            raise InvalidInput(f"version must be a positive integer, got {version}")
        final = path / str(version)
        if final.exists():
            raise Conflict(f"model {name!r} already has version {version}; choose another --version or remove it")
        staging = Path(tempfile.mkdtemp(dir=path, prefix=f".v{version}-"))
        try:
            for target_name, src in files.items():
                shutil.copy2(src, staging / target_name)
            os.replace(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return version

    def remove(self, name: str, version: int | None = None) -> None:
        path = self.path(name)
        if not (path / CONFIG_FILE).exists():
            raise NotFound(f"model {name!r} is not in the repository")
        target = path if version is None else path / str(version)
        if not target.exists():
            raise NotFound(f"model {name!r} has no version {version}")
        trash = Path(tempfile.mkdtemp(dir=self.root, prefix=".trash-"))
        os.replace(target, trash / target.name)  # atomic: the model vanishes at once
        shutil.rmtree(trash, ignore_errors=True)
