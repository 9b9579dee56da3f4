"""The catalog is a plug-in: the server, the console and the CLI find it through the ``aiaas.catalog`` entry point
group (``aiaas.registry.plugins``), its specs load without numpy or torch, a broken or missing plug-in leaves an
empty catalog, and every import path users' model.yaml files and code name keeps loading."""

from __future__ import annotations

import importlib
import json
import logging
import re
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from aiaas.catalog.plugin import BuiltinCatalog
from aiaas.registry import plugins
from aiaas.registry.catalogspec import CatalogSpec
from aiaas.registry.plugins import Catalog, CatalogPlugin, discover
from aiaas.runtime.python import resolve_class

ROOT = Path(__file__).resolve().parents[2]

# parameters.class values that catalog builds have written into users' model.yaml files: they must keep loading
CLASS_PATHS = [
    "aiaas.catalog.runtime.driving_astar:AStarPlanner",
    "aiaas.catalog.runtime.game_chess:StockfishMove",
    "aiaas.catalog.runtime.nlp_embedding:TextEmbedding",
    "aiaas.catalog.runtime.nlp_sentiment:VaderSentiment",
    "aiaas.catalog.runtime.nlp_summarizer:ExtractiveSummarizer",
    "aiaas.catalog.runtime.nlp_translate:ApertiumTranslator",
    "aiaas.catalog.runtime.recsys_mf:MovieRecommender",
    "aiaas.catalog.runtime.speech_asr:PocketSphinxASR",
    "aiaas.catalog.runtime.speech_tts:PiperTTS",
    "aiaas.catalog.runtime.speech_vad:SileroVAD",
    "aiaas.catalog.runtime.tabular_model:TabularClassifier",
    "aiaas.catalog.runtime.vision_classifier:FashionClassifier",
    "aiaas.catalog.runtime.vision_faces:FaceDetector",
    "aiaas.catalog.runtime.vision_generator:FashionGenerator",
    "aiaas.catalog.runtime.vision_ocr:OcrModel",
]
# the scenario modules before the catalog had one module per model, with names code imported from them
OLD_MODULES = {
    "nlp": ["bleu", "chrf", "pair_metrics", "build_minilm", "PARAPHRASES", "TOPICS", "EMBEDDING"],
    "vision": ["load_fashion", "DEJAVU", "OCR_REQ", "FASHION_DIR", "build_fashion_cnn", "class_mixtures"],
    "speech": ["wer", "normalize_words", "ASR", "HARVARD", "build_asr", "vad_clip"],
    "recommendation": ["load_movielens", "fit_als", "build_movielens"],
    "game": ["solves", "mlp_policy_onnx", "rollout", "build_cartpole", "PUZZLES"],
    "driving": ["path_ok", "reference_cost", "HIGHWAY_ACTIONS", "build_astar"],
    "medical": ["PIMA_FEATURES", "build_gbm", "RDATASETS"],
    "credit": ["encode_frame", "build_credit"],
    "llm": ["HELD_OUT", "build_gemma"],
}


def test_the_builtin_catalog_is_a_plugin_registered_under_the_entry_point_group() -> None:
    assert isinstance(BuiltinCatalog(), CatalogPlugin)
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(
        r'\[project\.entry-points\."aiaas\.catalog"\]\nbuiltin = "aiaas\.catalog\.plugin:BuiltinCatalog"', text
    )
    ep = EntryPoint("builtin", "aiaas.catalog.plugin:BuiltinCatalog", plugins.GROUP)
    assert set(ep.load()().specs()) == set(BuiltinCatalog().specs())


def test_discover_loads_installed_plugins_and_skips_broken_ones(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    eps = [
        EntryPoint("builtin", "aiaas.catalog.plugin:BuiltinCatalog", plugins.GROUP),
        EntryPoint("broken", "aiaas_no_such_catalog:Plugin", plugins.GROUP),
        EntryPoint("notaplugin", "json:JSONDecoder", plugins.GROUP),
    ]
    monkeypatch.setattr(plugins, "entry_points", lambda group: [e for e in eps if e.group == group])
    caplog.set_level(logging.ERROR, logger="aiaas.catalog")
    catalog = discover()
    assert [type(p).__name__ for p in catalog.plugins] == ["BuiltinCatalog"]
    assert "breast-cancer" in catalog.specs()
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "broken (aiaas_no_such_catalog:Plugin) failed to load: ModuleNotFoundError" in messages
    assert "notaplugin (json:JSONDecoder) is not a CatalogPlugin" in messages


def test_no_plugin_gives_an_empty_catalog_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="aiaas.catalog")
    catalog = discover("aiaas.catalog.tests-no-such-group")
    assert catalog.specs() == {} and catalog.select(None) == [] and catalog.heldout("breast-cancer") is None
    assert catalog.sweep() == [] and catalog.embedders() == {}
    assert any("no catalog plug-in is installed" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match=r"unknown catalog model\(s\) \['breast-cancer'\]"):
        catalog.select(["breast-cancer"])


def test_two_plugins_merge_and_the_first_keeps_a_name_both_give() -> None:
    class Extra(BuiltinCatalog):
        def specs(self) -> dict[str, CatalogSpec]:
            builtin = BuiltinCatalog().specs()
            return {"breast-cancer": builtin["pima-diabetes"], "pima-too": builtin["pima-diabetes"]}

    first = BuiltinCatalog()
    catalog = Catalog([first, Extra()])
    specs = catalog.specs()
    assert specs["breast-cancer"] is first.specs()["breast-cancer"]
    assert "pima-too" in specs and list(specs)[: len(first.specs())] == list(first.specs())
    assert catalog.build_command(Path("/h"), "breast-cancer", quick=True)[-4:] == [
        "--home",
        "/h",
        "--quick",
        "breast-cancer",
    ]


def test_reading_the_specs_imports_no_framework() -> None:
    """`aiaas catalog list` and the server's start read every spec: that must not load numpy or torch."""
    code = (
        "import sys\n"
        "from aiaas.catalog.plugin import BuiltinCatalog\n"
        "from aiaas.registry.plugins import Catalog\n"
        "specs = Catalog([BuiltinCatalog()]).specs()\n"
        "heavy = sorted(m for m in ('numpy', 'torch', 'onnxruntime', 'sklearn', 'aiaas.runtime') if m in sys.modules)\n"
        "print(len(specs), heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    n, heavy = out.stdout.split(" ", 1)
    assert int(n) >= 20
    assert heavy.strip() == "[]", f"reading the catalog's specs imported {heavy.strip()}"


def test_model_yaml_class_paths_keep_loading(tmp_path: Path) -> None:
    written = set()  # every class path a catalog build writes today must be in CLASS_PATHS (and so tested here)
    for path in (ROOT / "aiaas" / "catalog").rglob("*.py"):
        written |= set(re.findall(r"aiaas\.catalog\.runtime\.\w+:[A-Z]\w*", path.read_text()))
    assert written <= set(CLASS_PATHS), written - set(CLASS_PATHS)
    for spec in CLASS_PATHS:
        module = spec.partition(":")[0]
        try:
            importlib.import_module(module)
        except ImportError as e:  # an optional serving dependency of this one model is not installed here
            pytest.skip(f"{spec}: needs {e.name}")
        cls = resolve_class(spec, tmp_path)
        assert cls.__name__ == spec.partition(":")[2]


@pytest.mark.parametrize("old", sorted(OLD_MODULES))
def test_old_scenario_modules_are_aliases(old: str) -> None:
    module = importlib.import_module(f"aiaas.catalog.models.{old}")
    builtin = BuiltinCatalog().specs()
    assert module.SPECS and all(builtin[s.name] is s for s in module.SPECS)
    for name in OLD_MODULES[old]:
        assert getattr(module, name) is not None, name


def test_the_catalog_embedder_resolves_through_the_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiaas.catalog.runtime.nlp_embedding import repository_embedder
    from aiaas.errors import InvalidInput
    from aiaas.training.recipes import text

    catalog = Catalog([BuiltinCatalog()])
    assert catalog.embedders()["catalog"] == "aiaas.catalog.runtime.nlp_embedding:repository_embedder"
    monkeypatch.setattr(text, "installed_catalog", lambda: catalog)
    assert text.resolve_embedder("catalog") is repository_embedder
    monkeypatch.setattr(text, "installed_catalog", lambda: Catalog([]))  # no catalog installed
    with pytest.raises(InvalidInput, match="embedder 'catalog' cannot be imported"):
        text.resolve_embedder("catalog")


def test_assets_are_files_shipped_as_package_data() -> None:
    from aiaas.catalog.assets import ASSETS

    names = {p.name for p in ASSETS.iterdir()}
    assert {"fashion_example.png", "ocr_example.png", "face_example.jpg", "hello.wav"} <= names
    assert (ASSETS / "fashion_example.png").read_bytes().startswith(b"\x89PNG")
    assert (ASSETS / "hello.wav").read_bytes().startswith(b"RIFF")
    assert json.loads((ASSETS / "harvard.json").read_text())
    assert '"catalog/models/assets/*"' in (ROOT / "pyproject.toml").read_text()  # package-data
    for path in (ROOT / "aiaas" / "catalog" / "models").glob("*.py"):
        assert not re.search(r"[A-Za-z0-9+/]{400,}", path.read_text()), f"{path.name}: base64 in source"
