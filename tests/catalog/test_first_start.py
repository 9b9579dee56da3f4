"""The catalog's first start: shortest expected build first, builds stopped by the server remove their
temporary directory, and directories left by killed builds are swept at the next start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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
        "backend: onnx\ncard: {extra: {catalog: {revision: 0, quick: false, build_seconds: 2.5}}}\n")
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
    proc = subprocess.Popen([sys.executable, "-c", SLOW_BUILD, str(tmp_path / "models")], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
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
