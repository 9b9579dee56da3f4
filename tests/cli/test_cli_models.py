"""``aiaas models import|list|load|unload|remove`` through typer's CliRunner, offline and against a real server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml
from models import identity, mlp
from onnx import TensorProto
from typer.testing import CliRunner
from v2kit import ServerProcess, write_upper_model

from aiaas.cli.main import app

runner = CliRunner()


def cli(*args: str, input: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args], input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def admin_headers(home: Path) -> dict[str, str]:
    return {"Authorization": "Bearer " + (home / "admin.key").read_text().strip()}


def server_index(server: ServerProcess) -> dict[str, dict]:
    r = httpx.post(server.url + "/v2/repository/index", headers=admin_headers(server.home), timeout=30)
    assert r.status_code == 200, r.text
    return {row["name"]: row for row in r.json()}


# -- import -------------------------------------------------------------------------------------------
def test_import_writes_config_and_prints_the_signature(tmp_path: Path, dead_url: str) -> None:
    home = tmp_path / "home"
    code, out = cli("models", "import", mlp(tmp_path / "m.onnx"), "--name", "clf", "--home", home, "--url", dead_url)
    assert code == 0, out
    assert "imported clf version 1" in out
    assert "input  x: FP32 [-1, 4]" in out and "output y: FP32 [-1, 3]" in out
    assert "dynamic batching: up to 64" in out
    assert "not loaded now" in out  # no server: that's fine
    config = yaml.safe_load((home / "models" / "clf" / "model.yaml").read_text())
    assert config["backend"] == "onnx" and config["max_batch_size"] == 64
    assert config["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert (home / "models" / "clf" / "1" / "model.onnx").is_file()


def test_import_versions_and_refuses_an_existing_one(tmp_path: Path, dead_url: str) -> None:
    home, src = tmp_path / "home", mlp(tmp_path / "m.onnx")
    base = ("--name", "clf", "--home", home, "--url", dead_url)
    assert cli("models", "import", src, *base)[0] == 0
    code, out = cli("models", "import", src, *base)
    assert code == 0 and "version 2" in out
    code, out = cli("models", "import", src, *base, "--version", "5", "--max-batch-size", "8")
    assert code == 0 and "version 5" in out
    before = (home / "models" / "clf" / "5" / "model.onnx").read_bytes()
    code, out = cli("models", "import", identity(tmp_path / "i.onnx", TensorProto.INT64), *base, "--version", "5")
    assert code == 1 and "already has version 5" in out
    assert (home / "models" / "clf" / "5" / "model.onnx").read_bytes() == before  # untouched
    assert sorted(p.name for p in (home / "models" / "clf").iterdir() if p.is_dir()) == ["1", "2", "5"]


def test_import_of_a_fixed_shape_model_has_no_batching(tmp_path: Path, dead_url: str) -> None:
    from models import save
    from onnx import helper

    graph = helper.make_graph(
        [helper.make_node("Neg", ["a"], ["b"])],
        "fixed",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 3])],
    )
    src = save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "fixed.onnx")
    code, out = cli("models", "import", src, "--name", "neg", "--home", tmp_path / "home", "--url", dead_url)
    assert code == 0, out
    assert "input  a: FP32 [2, 3]" in out and "dynamic batching: off" in out
    config = yaml.safe_load((tmp_path / "home" / "models" / "neg" / "model.yaml").read_text())
    assert config.get("max_batch_size", 0) == 0


def test_import_refuses_bad_files_and_names(tmp_path: Path, dead_url: str) -> None:
    home = tmp_path / "home"
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"definitely not onnx")
    code, out = cli("models", "import", junk, "--name", "j", "--home", home, "--url", dead_url)
    assert code == 1 and "not a readable ONNX model" in out
    assert not (home / "models" / "j" / "model.yaml").exists()
    code, out = cli(
        "models", "import", mlp(tmp_path / "m.onnx"), "--name", "../evil", "--home", home, "--url", dead_url
    )
    assert code == 1 and "invalid model name" in out
    code, out = cli("models", "import", tmp_path / "missing.onnx", "--name", "m", "--home", home)
    assert code == 2  # typer: the file must exist


# -- list, offline ------------------------------------------------------------------------------------
def test_list_offline_shows_states_and_reasons(tmp_path: Path, dead_url: str) -> None:
    home = tmp_path / "home"
    cli("models", "import", mlp(tmp_path / "m.onnx"), "--name", "clf", "--home", home, "--url", dead_url)
    write_upper_model(home / "models")
    (home / "models" / "broken" / "1").mkdir(parents=True)
    (home / "models" / "broken" / "model.yaml").write_text("backend: onnx\nmax_batch_size: -3\n")
    code, out = cli("models", "list", "--home", home, "--url", dead_url)
    assert code == 0, out
    assert "server not reachable" in out
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 4}
    assert "NOT LOADED" in lines["clf"] and "NOT LOADED" in lines["upper"]
    assert "UNAVAILABLE" in lines["broken"] and "max_batch_size" in lines["broken"]


# -- remove, offline ----------------------------------------------------------------------------------
def test_remove_offline(tmp_path: Path, dead_url: str) -> None:
    home = tmp_path / "home"
    src = mlp(tmp_path / "m.onnx")
    for _ in range(2):
        cli("models", "import", src, "--name", "clf", "--home", home, "--url", dead_url)
    code, out = cli("models", "remove", "clf", "--home", home, "--url", dead_url, input="n\n")
    assert code == 1 and (home / "models" / "clf").is_dir()  # declined
    code, out = cli("models", "remove", "clf", "--version", "1", "--yes", "--home", home, "--url", dead_url)
    assert code == 0 and "removed clf version 1" in out
    assert not (home / "models" / "clf" / "1").exists() and (home / "models" / "clf" / "2").is_dir()
    code, out = cli("models", "remove", "clf", "--version", "1", "--yes", "--home", home, "--url", dead_url)
    assert code == 1 and "no version 1" in out
    code, out = cli("models", "remove", "clf", "--home", home, "--url", dead_url, input="y\n")
    assert code == 0 and not (home / "models" / "clf").exists()
    code, out = cli("models", "remove", "clf", "--yes", "--home", home, "--url", dead_url)
    assert code == 1 and "not in the repository" in out


def test_load_and_unload_without_a_server_fail_clearly(tmp_path: Path, dead_url: str) -> None:
    for action in ("load", "unload"):
        code, out = cli("models", action, "clf", "--home", tmp_path / "home", "--url", dead_url)
        assert code == 1 and "error:" in out


# -- against a running server ---------------------------------------------------------------------------
@pytest.mark.slow
def test_models_commands_against_a_server(server: ServerProcess, tmp_path: Path) -> None:
    home, url = server.home, server.url
    code, out = cli("models", "import", mlp(tmp_path / "m.onnx"), "--name", "live", "--home", home, "--url", url)
    assert code == 0 and "loaded by the running server" in out, out
    assert server_index(server)["live"]["state"] == "READY"

    code, out = cli("models", "list", "--home", home, "--url", url)
    assert code == 0 and "models (server)" in out
    (line,) = [ln for ln in out.splitlines() if "│ live " in ln]
    assert "READY" in line

    code, out = cli("models", "unload", "live", "--home", home, "--url", url)
    assert code == 0 and "live: unloaded" in out
    assert server_index(server)["live"]["state"] == "UNAVAILABLE"
    code, out = cli("models", "load", "live", "--home", home, "--url", url)
    assert code == 0 and "live: READY" in out
    assert server_index(server)["live"]["state"] == "READY"

    code, out = cli("models", "load", "ghost", "--home", home, "--url", url)
    assert code == 1 and "404" in out and "ghost" in out


@pytest.mark.slow
def test_remove_against_a_server_unloads_first(server: ServerProcess, tmp_path: Path) -> None:
    home, url = server.home, server.url
    src = mlp(tmp_path / "m.onnx")
    for _ in range(2):
        assert cli("models", "import", src, "--name", "gone", "--home", home, "--url", url)[0] == 0
    assert server_index(server)["gone"]["version"] == "2"

    code, out = cli("models", "remove", "gone", "--version", "2", "--yes", "--home", home, "--url", url)
    assert code == 0, out
    assert server_index(server)["gone"]["version"] == "1"  # reloaded from what is left
    assert server_index(server)["gone"]["state"] == "READY"

    code, out = cli("models", "remove", "gone", "--yes", "--home", home, "--url", url)
    assert code == 0 and not (home / "models" / "gone").exists()
    r = httpx.get(url + "/v2/models/gone/ready", headers=admin_headers(home), timeout=10)
    assert r.status_code in (404, 503)
    assert "gone" not in server_index(server)


@pytest.mark.slow
def test_list_with_a_wrong_key_does_not_pretend_the_server_is_down(
    server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIAAS_ADMIN_KEY", "not-the-key")
    code, out = cli("models", "list", "--home", server.home, "--url", server.url)
    assert code == 1
    assert "401" in out and "not reachable" not in out
