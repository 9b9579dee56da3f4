"""The catalog's first start: shortest expected build first, builds stopped by the server remove their
temporary directory, and directories left by killed builds are swept at the next start."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiaas.catalog.base import BuildContext, BuildResult, CatalogSpec
from aiaas.catalog.builder import WORK_PREFIX, expected_seconds, sweep_workdirs
from aiaas.catalog.registry import all_specs
from aiaas.registry import ModelRepository

ROOT = Path(__file__).resolve().parents[2]


def _spec(name: str, build_s: float) -> CatalogSpec:
    def build(ctx: BuildContext) -> BuildResult:
        raise AssertionError("not built here")

    return CatalogSpec(name, "nlp", "t", "s", "src", "MIT", build, no_floor="test", build_s=build_s)


def test_expected_seconds_prefer_this_machines_measurement(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path / "models")
    repo.ensure()
    specs = [_spec("slow", 900), _spec("quick", 5), _spec("mid", 60)]
    assert [s.name for s in sorted(specs, key=lambda s: expected_seconds(s, repo))] == ["quick", "mid", "slow"]
    (tmp_path / "models" / "slow" / "1").mkdir(parents=True)
    (tmp_path / "models" / "slow" / "model.yaml").write_text(
        "backend: onnx\ncard: {extra: {catalog: {revision: 0, quick: false, build_seconds: 2.5}}}\n"
    )
    assert expected_seconds(specs[0], repo) == 2.5  # measured here: a stale model rebuilds in its own time
    assert all_specs()["fashion-cnn"].build_s > all_specs()["vader-sentiment"].build_s


def test_sweep_removes_only_the_directories_of_dead_builds(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f"{WORK_PREFIX}gemma-3-270m-{dead.stdout.strip()}-abc123"
    live = tmp_path / f"{WORK_PREFIX}gemma-3-270m-{os.getpid()}-def456"
    for d in (orphan, live):
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "big.gguf").write_bytes(b"x" * 1000)
    assert sweep_workdirs(str(tmp_path)) == [str(orphan)]
    assert not orphan.exists() and live.exists()


SLOW_BUILD = """
import signal, sys, time
from pathlib import Path
from typing import Any
from aiaas.catalog.__main__ import _exit
from aiaas.catalog.base import BuildResult, CatalogSpec
from aiaas.catalog.builder import build
from aiaas.registry import ModelRepository

def slow(ctx):
    (ctx.workdir / "partial.bin").write_bytes(b"x" * 1000)
    print(ctx.workdir, flush=True)
    time.sleep(60)
    return BuildResult()

signal.signal(signal.SIGTERM, _exit)
repo = ModelRepository(Path(sys.argv[1]))
repo.ensure()
build(CatalogSpec("slowpoke", "nlp", "t", "s", "src", "MIT", slow, no_floor="test"), repo, True, lambda f, m: None)
"""


def test_a_build_stopped_with_sigterm_removes_its_temporary_directory(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_BUILD, str(tmp_path / "models")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        work = Path(proc.stdout.readline().strip())
        assert (work / "partial.bin").exists() and work.name.startswith(WORK_PREFIX + "slowpoke-")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        proc.kill()
    deadline = time.monotonic() + 5
    while work.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not work.exists()


# -- build order: shortest first, dependencies once and ahead of their dependents ------------------------------
def _dep_spec(name: str, build_s: float, depends: tuple[str, ...] = ()) -> CatalogSpec:
    spec = _spec(name, build_s)
    return dataclasses.replace(spec, depends=depends)


def test_build_order_puts_a_dependency_first_and_counts_it_in_the_dependents_time() -> None:
    from aiaas.service.catalog import build_order

    specs = [_dep_spec("quick", 5), _dep_spec("vae", 100, ("cnn",)), _dep_spec("cnn", 230), _dep_spec("mid", 60)]
    order = build_order(specs, {s.name: s.build_s for s in specs})
    # vae alone looks quicker than cnn, but it needs cnn: it waits with it (330 s), after the 5 s and 60 s models
    assert [s.name for s in order] == ["quick", "mid", "cnn", "vae"]
    built_dep = _dep_spec("vae2", 100, ("gone",))  # a dependency that is already built is not in the list
    assert [s.name for s in build_order([built_dep], {"vae2": 100})] == ["vae2"]


class _FakeModels:
    def __init__(self, repository: ModelRepository) -> None:
        self.repository = repository
        self.loaded: list[str] = []

    def mark(self, name: str, state: str, reason: str) -> None:
        pass

    async def load(self, name: str) -> None:
        self.loaded.append(name)


class _FakeCatalog:
    """Two models, ``cnn`` and ``vae`` that needs it; a build of ``vae`` would build ``cnn`` too if it were missing."""

    def __init__(self) -> None:
        self.specs = {"cnn": _dep_spec("cnn", 230), "vae": _dep_spec("vae", 100, ("cnn",))}
        self.built: list[str] = []

    def status(self, spec: CatalogSpec, repo: ModelRepository, quick: bool) -> Any:
        from aiaas.registry.plugins import Status

        return Status("built" if spec.name in self.built else "not built")

    def expected_seconds(self, spec: CatalogSpec, repo: ModelRepository) -> float:
        return spec.build_s


def test_two_builders_build_a_dependency_once_and_its_dependent_after_it(tmp_path: Path, monkeypatch: Any) -> None:
    import asyncio

    from aiaas.service import catalog as catalog_service
    from aiaas.settings import Settings

    repo = ModelRepository(tmp_path / "models")
    repo.ensure()
    fake = _FakeCatalog()
    runner = catalog_service.CatalogRunner(Settings(home=tmp_path), _FakeModels(repo), fake)  # type: ignore[arg-type]
    builds: list[str] = []

    async def build(name: str) -> bool:
        for dep in fake.specs[name].depends:  # what `python -m aiaas.catalog NAME` does: dependencies first
            if dep not in fake.built:
                builds.append(dep)
                fake.built.append(dep)
        builds.append(name)
        await asyncio.sleep(0.05 if name == "cnn" else 0)
        fake.built.append(name)
        return True

    monkeypatch.setattr(runner, "_build", build)
    monkeypatch.setattr(catalog_service, "builders", lambda: 2)
    asyncio.run(runner._run_builds(list(fake.specs.values()), repo))
    assert builds == ["cnn", "vae"]  # not cnn twice (once inside vae's build, once on its own)
    assert runner.models.loaded == ["cnn", "vae"]  # type: ignore[attr-defined]
