"""The server's background catalog builder.

At start, every selected catalog model (``AIAAS_CATALOG``) that is missing or stale is built in its own
subprocess (niced, one at a time, so serving keeps its CPU) and loaded as soon as it is built. Until then it
shows as LOADING with "building"; a model whose system packages are missing shows UNAVAILABLE with the exact
install command. Build logs go to ``$AIAAS_HOME/logs/catalog-<name>.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

from aiaas.catalog.builder import status
from aiaas.catalog.registry import all_specs, select
from aiaas.service.models import ModelManager
from aiaas.settings import Settings

log = logging.getLogger("aiaas.catalog")


class CatalogRunner:
    def __init__(self, settings: Settings, models: ModelManager) -> None:
        self.settings = settings
        self.models = models
        self.current: asyncio.subprocess.Process | None = None

    async def run(self) -> None:
        names = self.settings.catalog_names()
        if names == []:
            return
        try:
            specs = select(names)
        except ValueError as e:  # unknown names: say so, and build and serve the names that are known
            log.error("AIAAS_CATALOG: %s", e)
            known = all_specs()
            names = [n for n in names or [] if n in known]
            if not names:
                return
            specs = select(names)
        repo = self.models.repository
        todo = []
        for spec in specs:
            st = status(spec, repo, self.settings.catalog_quick)
            if st.state == "unavailable":
                self.models.mark(spec.name, "UNAVAILABLE", st.detail)
            elif st.state != "built":
                self.models.mark(spec.name, "LOADING", "waiting for its catalog build")
                todo.append(spec)
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        for spec in todo:
            self.models.mark(spec.name, "LOADING", "building (catalog); see logs/catalog-" + spec.name + ".log")
            ok = await self._build(spec.name)
            if ok:
                await self.models.load(spec.name)
            else:
                tail = self._log_tail(spec.name)
                self.models.mark(spec.name, "UNAVAILABLE", f"catalog build failed: {tail}")

    async def _build(self, name: str) -> bool:
        log_path = self.settings.logs_dir / f"catalog-{name}.log"
        args = [sys.executable, "-m", "aiaas.catalog", "--home", str(self.settings.home), name]
        if self.settings.catalog_quick:
            args.insert(-1, "--quick")
        with open(log_path, "ab") as out:
            self.current = await asyncio.create_subprocess_exec(
                *args, stdout=out, stderr=asyncio.subprocess.STDOUT, preexec_fn=lambda: os.nice(10)
            )
            code = await self.current.wait()
            self.current = None
        log.info("catalog build of %s finished with status %s", name, code)
        return code == 0

    def _log_tail(self, name: str) -> str:
        path = self.settings.logs_dir / f"catalog-{name}.log"
        try:
            lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "no log"
        status_lines = [ln for ln in lines if ln.startswith("STATUS ")]
        return (status_lines[-1] if status_lines else lines[-1] if lines else "no output")[:300]

    async def stop(self) -> None:
        proc = self.current
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
