"""The server's background catalog builder.

At start, every selected catalog model (``AIAAS_CATALOG``) that is missing or stale is built in its own
subprocess (niced; one at a time, two with 4 cores or more, so serving keeps its CPU), the shortest expected
build first so that most models are ready soonest, and loaded as soon as it is built. Temporary directories
left by builds that were killed are swept first. Until then it
shows as LOADING with "building"; a model whose system packages are missing shows UNAVAILABLE with the exact
install command. Build logs go to ``$AIAAS_HOME/logs/catalog-<name>.log``.

The catalog is whatever plug-ins are installed (``aiaas.registry.plugins``, entry point group ``aiaas.catalog``);
this module never imports a catalog package, and with no plug-in installed it builds nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from aiaas.registry import ModelRepository
from aiaas.registry.catalogspec import CatalogSpec
from aiaas.registry.plugins import Catalog, installed_catalog
from aiaas.service.models import ModelManager
from aiaas.settings import Settings

log = logging.getLogger("aiaas.catalog")


def build_order(todo: list[CatalogSpec], expected: dict[str, float]) -> list[CatalogSpec]:
    """The order the missing models are built in: the shortest expected build first, so that most models are
    ready soonest, and every model after the models it depends on. A model's expected time counts the missing
    models it depends on, so a quick model that needs a slow one waits with it; each dependency is built once,
    just ahead of its first dependent (it was built twice when the dependent's own build made it first)."""
    by_name = {spec.name: spec for spec in todo}

    def missing_deps(spec: CatalogSpec, seen: set[str]) -> set[str]:
        for dep in spec.depends:
            if dep in by_name and dep not in seen:
                seen.add(dep)
                missing_deps(by_name[dep], seen)
        return seen

    def cost(spec: CatalogSpec) -> float:
        return expected[spec.name] + sum(expected[d] for d in missing_deps(spec, set()))

    order: list[CatalogSpec] = []
    placed: set[str] = set()

    def place(spec: CatalogSpec) -> None:
        if spec.name in placed:
            return
        placed.add(spec.name)
        for dep in sorted((d for d in spec.depends if d in by_name), key=lambda d: cost(by_name[d])):
            place(by_name[dep])
        order.append(spec)

    for spec in sorted(todo, key=cost):  # stable: ties keep the catalog's order
        place(spec)
    return order


class CatalogRunner:
    def __init__(self, settings: Settings, models: ModelManager, catalog: Catalog | None = None) -> None:
        self.settings = settings
        self.models = models
        self._catalog = catalog  # None: the installed plug-ins, discovered when the first build is due
        self.running: set[asyncio.subprocess.Process] = set()
        self._todo: dict[str, CatalogSpec] = {}  # the models this start builds, by name
        self._done: dict[str, asyncio.Event] = {}  # set when a model's build has ended (built or failed)

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = installed_catalog()
        return self._catalog

    async def run(self) -> None:
        names = self.settings.catalog_names()
        if names == []:
            return
        catalog = self.catalog
        try:
            specs = catalog.select(names)
        except ValueError as e:  # unknown names: say so, and build and serve the names that are known
            log.error("AIAAS_CATALOG: %s", e)
            known = catalog.specs()
            names = [n for n in names or [] if n in known]
            if not names:
                return
            specs = catalog.select(names)
        repo = self.models.repository
        for stale in await asyncio.to_thread(catalog.sweep):
            log.info("removed %s, left by an interrupted catalog build", stale)
        todo = []
        for spec in specs:
            st = catalog.status(spec, repo, self.settings.catalog_quick)
            if st.state == "unavailable":
                self.models.mark(spec.name, "UNAVAILABLE", st.detail)
            elif st.state != "built":
                self.models.mark(spec.name, "LOADING", "waiting for its catalog build")
                todo.append(spec)
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        await self._run_builds(todo, repo)

    async def _run_builds(self, todo: list[CatalogSpec], repo: ModelRepository) -> None:
        order = build_order(todo, {spec.name: self.catalog.expected_seconds(spec, repo) for spec in todo})
        self._todo = {spec.name: spec for spec in order}
        self._done = {spec.name: asyncio.Event() for spec in order}
        queue: asyncio.Queue[str] = asyncio.Queue()
        for spec in order:
            queue.put_nowait(spec.name)
        await asyncio.gather(*(self._builder(queue) for _ in range(min(builders(), len(order)))))

    async def _builder(self, queue: asyncio.Queue[str]) -> None:
        while not queue.empty():
            name = queue.get_nowait()
            try:
                await self._build_one(name)
            finally:
                self._done[name].set()

    async def _build_one(self, name: str) -> None:
        spec = self._todo[name]
        for dep in spec.depends:  # with two builders, a dependency may still be building in the other one
            if dep in self._done:
                await self._done[dep].wait()
        repo = self.models.repository
        if self.catalog.status(spec, repo, self.settings.catalog_quick).state == "built":
            await self.models.load(name)  # built meanwhile (e.g. by hand with `aiaas catalog build`)
            return
        self.models.mark(name, "LOADING", "building (catalog); see logs/catalog-" + name + ".log")
        if await self._build(name):
            await self.models.load(name)
        else:
            self.models.mark(name, "UNAVAILABLE", f"catalog build failed: {self._log_tail(name)}")

    async def _build(self, name: str) -> bool:
        log_path = self.settings.logs_dir / f"catalog-{name}.log"
        args = self.catalog.build_command(self.settings.home, name, self.settings.catalog_quick)
        with open(log_path, "ab") as out:
            proc = await asyncio.create_subprocess_exec(
                *args, stdout=out, stderr=asyncio.subprocess.STDOUT, preexec_fn=lambda: os.nice(10)
            )
            self.running.add(proc)
            try:
                code = await proc.wait()
            finally:
                self.running.discard(proc)
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
        """Stop the running builds: SIGTERM (the build removes its temporary directory), SIGKILL after 10 s."""
        await asyncio.gather(*(self._stop(proc) for proc in list(self.running)))

    @staticmethod
    async def _stop(proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()


def builders() -> int:
    """Concurrent catalog builds: a second one from 4 cores on (builds are niced, but serving needs its cores)."""
    return 2 if (os.cpu_count() or 1) >= 4 else 1
