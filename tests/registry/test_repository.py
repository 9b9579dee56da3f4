"""The on-disk model repository: config validation, version policies, ONNX import, removal, hostile names."""

from __future__ import annotations

from pathlib import Path

import pytest
from models import identity, mlp
from onnx import TensorProto, helper

from aiaas.errors import Conflict, InvalidInput, NotFound
from aiaas.registry import ModelRepository
from aiaas.registry.onnx_import import config_from_onnx, import_onnx
from aiaas.types.model_config import ModelConfig, VersionPolicy


def write_model(repo: ModelRepository, name: str, yaml_text: str, versions: tuple[int, ...] = (1,)) -> Path:
    path = repo.root / name
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.yaml").write_text(yaml_text, encoding="utf-8")
    for v in versions:
        (path / str(v)).mkdir(exist_ok=True)
    return path


GOOD = """
backend: onnx
max_batch_size: 8
inputs:
  - {name: x, datatype: FP32, shape: [-1, 4]}
outputs:
  - {name: y, datatype: FP32, shape: [-1, 3]}
batching: {max_queue_delay_ms: 5, max_queue_size: 10}
"""


def test_valid_config(repo: ModelRepository) -> None:
    write_model(repo, "good", GOOD, versions=(1, 3, 2))
    entry = repo.read("good")
    assert entry.error is None
    assert entry.config is not None and entry.config.name == "good"
    assert entry.config.max_batch_size == 8 and entry.config.batching.max_queue_size == 10
    assert entry.versions == [1, 2, 3]
    assert entry.served_versions == [3]  # default policy: the latest version
    assert repo.names() == ["good"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("backend: onnx\ninputs: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "must be a mapping"),
        ("", "must be a mapping"),
        ("backend: onnx\nmax_batchsize: 4\n", "max_batchsize"),  # unknown key (typo) is not ignored
        ("backend: onnx\nbatching: {max_delay: 3}\n", "batching.max_delay"),
        ("backend: onnx\ninputs: [{name: x, datatype: FLOAT, shape: [1]}]\n", "inputs.0.datatype"),
        ("backend: onnx\ninputs: [{name: x, datatype: FP32, shape: [0]}]\n", "positive size or -1"),
        (
            "backend: onnx\nmax_batch_size: 4\ninputs: [{name: x, datatype: FP32, shape: [4, 3]}]\n",
            "tensor 'x': with max_batch_size > 0 the first dimension is the batch axis",
        ),
        ("name: other\nbackend: onnx\n", "names the model 'other' but its directory is 'm'"),
        ("backend: python\n", "needs parameters.class"),
        ("backend: pipeline\n", "needs a 'pipeline:' section"),
        ("backend: pipeline\npipeline: {steps: [], outputs: {}}\n", "pipeline.steps"),
        ("backend: onnx\ninstances: 0\n", "instances out of range"),
        ("backend: onnx\nversion_policy: {latest: 2, all: true}\n", "choose one of"),
        ("backend: onnx\nversion_policy: {latest: 0}\n", "latest must be >= 1"),
        (
            "backend: onnx\ninputs: [{name: x, datatype: FP32, shape: [1]}, {name: x, datatype: FP32, shape: [1]}]\n",
            "duplicate input names",
        ),
        ("inputs: []\n", "backend"),
    ],
    ids=[
        "bad-yaml",
        "list",
        "empty",
        "unknown-key",
        "unknown-nested-key",
        "bad-datatype",
        "zero-dim",
        "batch-dim",
        "name-mismatch",
        "python-no-class",
        "pipeline-no-section",
        "pipeline-no-steps",
        "instances",
        "policy-two",
        "policy-zero",
        "duplicate-inputs",
        "no-backend",
    ],
)
def test_invalid_config_is_an_entry_error(repo: ModelRepository, text: str, reason: str) -> None:
    write_model(repo, "m", text)
    entry = repo.read("m")  # never raises for a broken model
    assert entry.config is None
    assert entry.error is not None and reason in entry.error, entry.error
    assert "\n" not in entry.error.split(":", 1)[0]  # starts with a one-line summary


def test_broken_model_does_not_hide_the_others(repo: ModelRepository) -> None:
    write_model(repo, "good", GOOD)
    write_model(repo, "bad", "backend: onnx\nbogus: 1\n")
    entries = {e.name: e for e in repo.scan()}
    assert entries["good"].error is None and entries["bad"].error is not None


def test_model_without_versions(repo: ModelRepository) -> None:
    write_model(repo, "empty", GOOD, versions=())
    entry = repo.read("empty")
    assert entry.config is not None and entry.error is not None and "no version directories" in entry.error


def test_non_numeric_dirs_are_not_versions(repo: ModelRepository) -> None:
    path = write_model(repo, "m", GOOD, versions=(2,))
    (path / "notes").mkdir()
    (path / "10").write_text("a file, not a version")
    assert repo.read("m").versions == [2]


def test_read_unknown_model(repo: ModelRepository) -> None:
    with pytest.raises(NotFound):
        repo.read("nope")


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ({}, [7]),
        ({"latest": 2}, [5, 7]),
        ({"latest": 10}, [1, 2, 5, 7]),
        ({"all": True}, [1, 2, 5, 7]),
        ({"specific": [2, 7, 9]}, [2, 7]),
        ({"specific": []}, []),
    ],
)
def test_version_policy(policy: dict, expected: list[int]) -> None:
    assert VersionPolicy(**policy).select([7, 1, 5, 2]) == expected


def test_version_policy_from_yaml(repo: ModelRepository) -> None:
    write_model(repo, "m", GOOD + "version_policy: {specific: [1, 3]}\n", versions=(1, 2, 3))
    assert repo.read("m").served_versions == [1, 3]


# -- import -----------------------------------------------------------------------------------------
def test_import_onnx_with_dynamic_batch_axis(repo: ModelRepository, tmp_path: Path) -> None:
    src = mlp(tmp_path / "src" / "mlp.onnx")
    config, v = import_onnx(repo, src, "mlp", max_batch_size=16)
    assert v == 1
    entry = repo.read("mlp")
    assert entry.error is None and entry.config is not None
    assert entry.config.max_batch_size == 16
    assert [(t.name, t.datatype, t.shape) for t in entry.config.inputs] == [("x", "FP32", [-1, 4])]
    assert [(t.name, t.datatype, t.shape) for t in entry.config.outputs] == [("y", "FP32", [-1, 3])]
    assert (repo.version_dir("mlp", 1) / "model.onnx").read_bytes() == src.read_bytes()
    assert config.backend == "onnx"


def test_import_onnx_with_fixed_batch_axis(repo: ModelRepository, tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["a"], ["b"])],
        "fixed",
        [helper.make_tensor_value_info("a", TensorProto.INT64, [2, 3])],
        [helper.make_tensor_value_info("b", TensorProto.INT64, [2, 3])],
    )
    src = tmp_path / "fixed.onnx"
    from models import OPSET, save

    save(helper.make_model(graph, opset_imports=OPSET), src)
    import_onnx(repo, src, "fixed")
    cfg = repo.read("fixed").config
    assert cfg is not None
    assert cfg.max_batch_size == 0
    assert [(t.datatype, t.shape) for t in cfg.inputs] == [("INT64", [2, 3])]


def test_import_adds_versions_and_keeps_config(repo: ModelRepository, tmp_path: Path) -> None:
    src = identity(tmp_path / "id.onnx", TensorProto.FLOAT)
    import_onnx(repo, src, "idm", max_batch_size=4)
    # an operator's edit of the config survives the import of a new version
    cfg = repo.read("idm").config
    assert cfg is not None
    repo.write_config("idm", cfg.model_copy(update={"description": "edited"}))
    _, v2 = import_onnx(repo, src, "idm", max_batch_size=99)
    _, v7 = import_onnx(repo, src, "idm", version=7)
    _, v8 = import_onnx(repo, src, "idm")
    assert (v2, v7, v8) == (2, 7, 8)
    entry = repo.read("idm")
    assert entry.versions == [1, 2, 7, 8]
    assert entry.config is not None and entry.config.description == "edited" and entry.config.max_batch_size == 4
    leftovers = [p.name for p in entry.path.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no staging directories or temp config files


def test_import_refuses_an_existing_version(repo: ModelRepository, tmp_path: Path) -> None:
    src = identity(tmp_path / "id.onnx", TensorProto.INT32)
    import_onnx(repo, src, "idm", version=3)
    before = (repo.version_dir("idm", 3) / "model.onnx").stat().st_mtime_ns
    with pytest.raises(Conflict) as info:
        import_onnx(repo, mlp(tmp_path / "other.onnx"), "idm", version=3)
    assert info.value.status_code == 409 and "version 3" in info.value.message
    assert (repo.version_dir("idm", 3) / "model.onnx").stat().st_mtime_ns == before


def test_failed_copy_leaves_no_version_behind(repo: ModelRepository, tmp_path: Path) -> None:
    src = identity(tmp_path / "id.onnx", TensorProto.FLOAT)
    import_onnx(repo, src, "idm")
    with pytest.raises(FileNotFoundError):
        repo.add_version("idm", {"model.onnx": src, "extra.bin": tmp_path / "missing.bin"})
    entry = repo.read("idm")
    assert entry.versions == [1]
    assert [p.name for p in entry.path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    "content", [b"", b"this is not an onnx model", b"\x08\x07"], ids=["empty", "text", "proto-ish"]
)
def test_import_rejects_non_onnx_files(repo: ModelRepository, tmp_path: Path, content: bytes) -> None:
    src = tmp_path / "fake.onnx"
    src.write_bytes(content)
    with pytest.raises(InvalidInput) as info:
        import_onnx(repo, src, "fake")
    assert "fake.onnx" in info.value.message
    assert not repo.exists("fake")


def test_import_missing_file(repo: ModelRepository, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        import_onnx(repo, tmp_path / "nope.onnx", "nope")


def test_import_with_invalid_overrides_is_invalid_input(repo: ModelRepository, tmp_path: Path) -> None:
    src = mlp(tmp_path / "mlp.onnx")
    with pytest.raises(InvalidInput, match="instances"):
        import_onnx(repo, src, "mlp", overrides={"instances": 0})
    assert not repo.exists("mlp")


def test_config_from_onnx_batchability_needs_every_tensor(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["a"], ["b"], keepdims=0)],
        "reduce",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [])],
    )
    from models import OPSET, save

    src = save(helper.make_model(graph, opset_imports=OPSET), tmp_path / "r.onnx")
    cfg = config_from_onnx(src, max_batch_size=8)
    assert cfg.max_batch_size == 0  # the scalar output has no batch axis


# -- removal ----------------------------------------------------------------------------------------
def test_remove_one_version_then_the_model(repo: ModelRepository, tmp_path: Path) -> None:
    src = identity(tmp_path / "id.onnx", TensorProto.FLOAT)
    for _ in range(2):
        import_onnx(repo, src, "idm")
    repo.remove("idm", 1)
    assert repo.read("idm").versions == [2]
    with pytest.raises(NotFound, match="no version 1"):
        repo.remove("idm", 1)
    repo.remove("idm")
    assert not repo.exists("idm") and repo.names() == []
    assert not (repo.root / "idm").exists()
    assert [p.name for p in repo.root.iterdir()] == []  # no trash left behind
    with pytest.raises(NotFound):
        repo.remove("idm")


# -- names ------------------------------------------------------------------------------------------
HOSTILE = ["../x", "..", "a/b", "a\\b", "x" * 500, "", ".hidden", "-rf", "a b", "abc\n", "x..y", "caf\u00e9"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused(repo: ModelRepository, tmp_path: Path, name: str) -> None:
    src = identity(tmp_path / "id.onnx", TensorProto.FLOAT)
    with pytest.raises(InvalidInput):
        import_onnx(repo, src, name)
    for call in (repo.read, repo.exists, repo.remove, lambda n: repo.write_config(n, {"backend": "onnx"})):
        with pytest.raises(InvalidInput):
            call(name)
    with pytest.raises(InvalidInput):
        repo.add_version(name, {"model.onnx": src})
    assert list(tmp_path.glob("**/model.onnx")) == []


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_in_config(name: str) -> None:
    with pytest.raises(ValueError):
        ModelConfig(name=name, backend="onnx")


def test_longest_valid_name(repo: ModelRepository, tmp_path: Path) -> None:
    name = "a" * 128
    import_onnx(repo, identity(tmp_path / "id.onnx", TensorProto.FLOAT), name)
    assert repo.names() == [name]


def test_hand_made_directory_with_an_invalid_name_is_skipped(repo: ModelRepository) -> None:
    write_model(repo, "good", GOOD)
    write_model(repo, "bad name", GOOD)
    write_model(repo, "x" * 200, GOOD)
    assert repo.names() == ["good"]
    assert [e.name for e in repo.scan()] == ["good"]  # scanning never raises for them
