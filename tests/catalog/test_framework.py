"""The catalog framework: every spec is complete and its docs example is a valid V2 request, dependency
order, install commands for what is missing, build states, failed builds leave nothing behind, `aiaas catalog
list` shows measured metrics next to floors, and docs/catalog.md's section is the one the specs generate."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from models import identity  # tests/models.py (tests/conftest.py puts it on the path)
from onnx import TensorProto
from rich.console import Console
from typer.testing import CliRunner

from aiaas.catalog import registry
from aiaas.catalog.base import BuildContext, BuildResult, CatalogSpec, Floor, Requirement
from aiaas.catalog.builder import build, status
from aiaas.catalog.registry import all_specs, select
from aiaas.codecs.v2 import decode_request
from aiaas.registry import ModelRepository
from aiaas.registry.repository import check_name
from aiaas.service.dataplane import check_inputs

ROOT = Path(__file__).resolve().parents[2]
ISSUE_SCENARIOS = ("nlp", "vision", "speech", "recommendation", "game", "driving", "medical", "credit")
SPECS = all_specs()
# cheap quick builds (a few seconds together) whose configs check their examples' inputs without a full catalog;
# every other example is sent to its served model by its scenario's tests and by bench/catalog.py
CHEAP = ["vader-sentiment", "breast-cancer", "pima-diabetes", "credit-risk"]


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("catalog_readme", ROOT / "scripts" / "catalog_readme.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- specs ----------------------------------------------------------------------------------------------------
def test_there_is_a_catalog_model_for_every_scenario() -> None:
    assert {s.scenario for s in SPECS.values()} == set(ISSUE_SCENARIOS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_spec_is_complete(name: str) -> None:
    spec = SPECS[name]
    check_name(spec.name)
    assert spec.name == name
    assert spec.scenario in ISSUE_SCENARIOS
    for field in ("task", "summary", "source", "license", "example"):
        assert getattr(spec, field).strip(), f"{name}: empty {field}"
    assert spec.floors or spec.no_floor.strip(), f"{name}: give it floors, or say in no_floor why it has none"
    for f in spec.floors:
        assert f.op in (">=", "<=", ">") and f.metric, f
    assert all(d in SPECS for d in spec.depends), spec.depends
    assert spec.revision >= 1


@pytest.mark.parametrize("name", sorted(SPECS))
def test_example_is_a_valid_v2_request(name: str) -> None:
    example = SPECS[name].example
    doc = json.loads(example)
    assert set(doc) <= {"inputs", "parameters", "outputs", "id"}
    decoded = decode_request(example.encode())
    assert decoded.inputs, name
    for tensor_name, arr in decoded.inputs.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", tensor_name), tensor_name
        assert arr.size > 0
        if tensor_name.endswith("_b64"):  # base64 text, not raw bytes, so that curl can send it
            import base64

            for item in arr.ravel():
                assert base64.b64decode(item, validate=True)


@pytest.fixture(scope="module")
def cheap_repo(tmp_path_factory: pytest.TempPathFactory) -> ModelRepository:
    missing = {n: SPECS[n].requires.missing() for n in CHEAP if SPECS[n].requires.missing()}
    if missing:
        pytest.skip(f"needs: {missing}")
    repo = ModelRepository(tmp_path_factory.mktemp("cheap") / "home" / "models")
    repo.ensure()
    for name in CHEAP:
        st = build(SPECS[name], repo, quick=True, progress=lambda f, m: None)
        assert st.state == "built", st.detail
    return repo


@pytest.mark.parametrize("name", CHEAP)
def test_example_names_only_declared_inputs(cheap_repo: ModelRepository, name: str) -> None:
    config = cheap_repo.read(name).config
    assert config is not None
    decoded = decode_request(SPECS[name].example.encode())
    check_inputs(name, config.inputs, decoded.inputs, decoded.datatypes)  # raises InvalidInput otherwise


def test_check_inputs_catches_an_undeclared_example_input(cheap_repo: ModelRepository) -> None:
    from aiaas.errors import InvalidInput

    config = cheap_repo.read("vader-sentiment").config
    assert config is not None
    bad = SPECS["vader-sentiment"].example.replace('"name": "text"', '"name": "sentence"')
    decoded = decode_request(bad.encode())
    with pytest.raises(InvalidInput, match="no input 'sentence'"):
        check_inputs("vader-sentiment", config.inputs, decoded.inputs, decoded.datatypes)


# -- select ---------------------------------------------------------------------------------------------------
def test_select_puts_dependencies_first() -> None:
    assert [s.name for s in select(["extractive-summarizer"])] == ["minilm-embedding", "extractive-summarizer"]
    assert [s.name for s in select(["piper-tts", "pocketsphinx-asr"])] == ["pocketsphinx-asr", "piper-tts"]
    everything = [s.name for s in select(None)]
    assert sorted(everything) == sorted(SPECS) and len(everything) == len(set(everything))
    for i, name in enumerate(everything):
        assert set(SPECS[name].depends) <= set(everything[:i]), name


def test_select_names_unknown_models() -> None:
    with pytest.raises(ValueError, match=r"unknown catalog model\(s\) \['no-such-model'\]; known: .*breast-cancer"):
        select(["breast-cancer", "no-such-model"])


def fake_spec(name: str, build_fn: Callable[[BuildContext], BuildResult] | None = None, **kw: object) -> CatalogSpec:
    defaults: dict[str, object] = dict(
        scenario="medical",
        task="test",
        summary="a test model",
        source="tests",
        license="MIT",
        floors=(Floor("score", ">=", 0.5),),
        example="{}",
    )
    defaults.update(kw)
    return CatalogSpec(name=name, build=build_fn or write_identity, **defaults)  # type: ignore[arg-type]


def test_select_reports_a_dependency_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    specs = {"a": fake_spec("a", depends=("b",)), "b": fake_spec("b", depends=("a",))}
    monkeypatch.setattr(registry, "all_specs", lambda: specs)
    with pytest.raises(ValueError, match="cycle: a -> b -> a"):
        select(["a"])


# -- requirements ---------------------------------------------------------------------------------------------
def test_missing_requirements_give_the_exact_install_command() -> None:
    assert Requirement(pip=(("json", "json"),), apt=(("coreutils", "ls"),)).missing() is None
    assert Requirement(pip=(("no_such_module_xyz", "no-such-pkg==1.0"),)).missing() == "pip install 'no-such-pkg==1.0'"
    assert Requirement(apt=(("no-such-deb", "/nonexistent/probe"),)).missing() == "apt-get install -y no-such-deb"
    req = Requirement(
        pip=(("json", "json"), ("no_such_a", "pkg-a>=2"), ("no_such_b", "--no-deps pkg-b==1.4.4")),
        apt=(("deb-one", "/nonexistent/one"), ("coreutils", "ls"), ("deb-two", "no-such-command-xyz")),
    )
    assert req.missing() == (
        "apt-get install -y deb-one deb-two && pip install 'pkg-a>=2' && pip install --no-deps 'pkg-b==1.4.4'"
    )


# -- states and builds ----------------------------------------------------------------------------------------
def write_identity(ctx: BuildContext) -> BuildResult:
    ctx.progress(0.5, "writing")
    path = identity(ctx.workdir / "model.onnx", TensorProto.FLOAT)
    config = {
        "backend": "onnx",
        "max_batch_size": 8,
        "inputs": [{"name": "inp", "datatype": "FP32", "shape": [-1, 2]}],
        "outputs": [{"name": "out", "datatype": "FP32", "shape": [-1, 2]}],
    }
    ctx.write({"model.onnx": path}, config, {"source": "tests", "license": "MIT", "metrics": {"size_mb": 0.001}})
    return BuildResult({"score": 0.75 if ctx.quick else 0.9})


@pytest.fixture
def repo(tmp_path: Path) -> ModelRepository:
    r = ModelRepository(tmp_path / "models")
    r.ensure()
    return r


def quiet(frac: float, msg: str) -> None:
    pass


def test_status_states(repo: ModelRepository) -> None:
    spec = fake_spec("fake-model")
    assert status(spec, repo).state == "not built"

    st = build(spec, repo, quick=True, progress=quiet)
    assert st.state == "built" and st.quick is True
    assert status(spec, repo, quick=True).state == "built"
    stale = status(spec, repo, quick=False)  # a server that wants full builds rebuilds a quick one
    assert (stale.state, stale.detail) == ("stale", "quick build")
    assert stale.metrics and stale.metrics["score"] == 0.75

    assert build(spec, repo, quick=False, progress=quiet).state == "built"
    built = status(spec, repo)
    assert built.state == "built" and built.detail == "version 2" and built.metrics["score"] == 0.9
    card = repo.read("fake-model").config.card  # type: ignore[union-attr]
    assert card.extra["catalog"]["floors"] == {"score": ">= 0.5"} and card.extra["catalog"]["quick"] is False

    newer = fake_spec("fake-model", revision=2)
    assert status(newer, repo).state == "stale" and "older recipe" in status(newer, repo).detail

    gone = fake_spec("fake-model", requires=Requirement(apt=(("no-such-deb", "/nonexistent/probe"),)))
    st = status(gone, repo)
    assert (st.state, st.detail) == ("unavailable", "needs: apt-get install -y no-such-deb")
    assert build(gone, repo, quick=True, progress=quiet).state == "unavailable"
    assert repo.read("fake-model").versions == [1, 2]  # nothing was built


def failing_after_write(ctx: BuildContext) -> BuildResult:
    write_identity(ctx)  # a complete version ...
    raise RuntimeError("evaluation crashed")  # ... that was never measured


def failing_before_write(ctx: BuildContext) -> BuildResult:
    (ctx.workdir / "half.onnx").write_bytes(b"\x00" * 10)
    raise RuntimeError("training diverged")


def config_write_fails(ctx: BuildContext) -> BuildResult:
    def disk_full(*args: object, **kw: object) -> None:
        raise OSError("No space left on device")

    ctx.repo.write_config = disk_full  # type: ignore[method-assign]  # after the version's files are copied
    try:
        return write_identity(ctx)
    finally:
        del ctx.repo.write_config


@pytest.mark.parametrize("build_fn", [failing_after_write, failing_before_write, config_write_fails])
def test_a_failed_build_leaves_no_half_written_version(repo: ModelRepository, build_fn: Callable) -> None:
    spec = fake_spec("fake-model", build_fn)
    st = build(spec, repo, quick=True, progress=quiet)
    assert st.state == "failed" and st.detail
    assert not (repo.root / "fake-model").exists()
    assert repo.names() == []

    # on top of a good build: the failed rebuild keeps the previous version and card as they were
    assert build(fake_spec("fake-model"), repo, quick=True, progress=quiet).state == "built"
    before = (repo.root / "fake-model" / "model.yaml").read_bytes()
    assert build(spec, repo, quick=False, progress=quiet).state == "failed"
    assert repo.read("fake-model").versions == [1]
    assert (repo.root / "fake-model" / "model.yaml").read_bytes() == before
    assert status(fake_spec("fake-model"), repo, quick=True).state == "built"
    assert not [p for p in (repo.root / "fake-model").iterdir() if p.name.startswith(".")]


def test_build_reports_progress(repo: ModelRepository) -> None:
    seen: list[tuple[float, str]] = []
    build(fake_spec("fake-model"), repo, quick=True, progress=lambda f, m: seen.append((f, m)))
    assert seen == [(0.5, "writing")]


# -- aiaas catalog list ---------------------------------------------------------------------------------------
def test_catalog_list_shows_measured_metrics_next_to_floors(
    cheap_repo: ModelRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiaas.cli import catalog as catalog_cli
    from aiaas.cli.main import app

    monkeypatch.setattr(catalog_cli, "console", Console(width=400, color_system=None))
    home = cheap_repo.root.parent
    result = CliRunner().invoke(app, ["catalog", "list", "--home", str(home)])
    assert result.exit_code == 0, result.output
    lines = {ln.split("│")[1].strip(): ln for ln in result.output.splitlines() if ln.count("│") > 3}
    auc = cheap_repo.read("breast-cancer").config.card.metrics["auc"]  # type: ignore[union-attr]
    row = lines["breast-cancer"]
    assert "built (quick)" in row
    assert re.search(rf"auc {auc:.4g} \(>= 0\.98\) (PASS|MISS)", row), row
    assert ("PASS" in row) == (auc >= 0.98)
    assert re.search(r"accuracy [0-9.]+ \(>= 0\.7\) PASS", lines["vader-sentiment"])
    assert "not built" in lines["minilm-embedding"]
    assert "pair_accuracy - (>= 0.9)" in lines["minilm-embedding"]


# -- docs/catalog.md ------------------------------------------------------------------------------------------
def test_readme_catalog_section_is_current() -> None:
    script = load_script()
    assert script.stale() == [], "run: .venv/bin/python scripts/catalog_readme.py"


def test_readme_section_has_a_curl_example_for_every_model() -> None:
    script = load_script()
    text = script.section(SPECS)
    for name, spec in SPECS.items():
        line = next(ln for ln in text.splitlines() if f"/v2/models/{name}/infer" in ln)
        assert line.startswith('curl -s -H "Authorization: Bearer $KEY" localhost:8000/')
        data = line.split(" -d ", 1)[1]
        if data.startswith("@"):
            assert (ROOT / data[1:]).read_text().strip() == spec.example
        else:
            assert data == f"'{spec.example}'" and "'" not in spec.example
        if spec.floors:
            assert str(spec.floors[0]) in text


def test_readme_check_detects_a_stale_section(tmp_path: Path) -> None:
    script = load_script()
    readme = tmp_path / "catalog.md"
    current = (ROOT / "docs" / "catalog.md").read_text()
    readme.write_text(current)
    assert script.stale(readme) == []
    readme.write_text(
        current.replace(
            "localhost:8000/v2/models/breast-cancer/infer", "localhost:8000/v2/models/breast-cancer/predict"
        )
    )
    assert script.stale(readme) == ["catalog.md: the '## Built-in catalog' section"]
    changed = dict(SPECS)
    changed["breast-cancer"] = fake_spec("breast-cancer", example='{"inputs": []}')
    readme.write_text(current)
    assert "catalog.md: the '## Built-in catalog' section" in script.stale(readme, changed)


def test_readme_section_goes_before_related_when_missing() -> None:
    script = load_script()
    before, current, after = script.split_readme("# t\n\nintro\n\n## Related\n\ntext\n")
    assert (before, current, after) == ("# t\n\nintro\n\n", "", "## Related\n\ntext\n")
    before, current, after = script.split_readme("# t\n\n## Built-in catalog\n\nold\n\n## API\n")
    assert (before, current, after) == ("# t\n\n", "## Built-in catalog\n\nold\n\n", "## API\n")
