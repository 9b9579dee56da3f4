"""``aiaas run``'s input building and output rendering, from model metadata alone (no server)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aiaas.cli.tensors import build_inputs, render
from aiaas.errors import InvalidInput

VISION = {
    "name": "fashion",
    "inputs": [
        {"name": "image", "datatype": "BYTES", "shape": [-1]},
        {"name": "image_b64", "datatype": "BYTES", "shape": [-1]},
        {"name": "pixels", "datatype": "UINT8", "shape": [-1, 28, 28]},
    ],
    "parameters": {"optional_inputs": ["image", "image_b64", "pixels"]},
}
TABULAR = {
    "name": "credit",
    "inputs": [
        {"name": "rows", "datatype": "BYTES", "shape": [-1]},
        {"name": "age", "datatype": "FP32", "shape": [-1, 1]},
    ],
    "parameters": {"optional_inputs": ["rows", "age"]},
}
CARTPOLE = {"name": "cartpole", "inputs": [{"name": "observation", "datatype": "FP32", "shape": [-1, 4]}]}
RECO = {
    "name": "reco",
    "inputs": [
        {"name": "user_id", "datatype": "INT64", "shape": [-1]},
        {"name": "k", "datatype": "INT64", "shape": [1]},
    ],
    "parameters": {"optional_inputs": ["k"]},
}


def test_files_go_to_their_natural_input(tmp_path: Path) -> None:
    png = tmp_path / "shoe.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    t = build_inputs(VISION, [str(png)])
    assert list(t) == ["image"] and t["image"][0] == png.read_bytes()
    csv = tmp_path / "rows.csv"
    csv.write_text("age,housing,income\n42,own,1000.5\n30,,7\n")
    rows = build_inputs(TABULAR, [str(csv)])["rows"]
    assert [json.loads(r) for r in rows] == [
        {"age": 42.0, "housing": "own", "income": 1000.5},
        {"age": 30.0, "income": 7.0},
    ]  # empty cells are left out


def test_numbers_take_the_input_shape() -> None:
    obs = build_inputs(CARTPOLE, ["0.1, 0.2 0.3 0.4"])["observation"]
    assert obs.dtype == np.float32 and obs.shape == (1, 4)
    assert build_inputs(CARTPOLE, ["[[1,2,3,4],[5,6,7,8]]"])["observation"].shape == (2, 4)
    t = build_inputs(RECO, ["15", "k=5"])
    assert t["user_id"].tolist() == [15] and t["k"].tolist() == [5] and t["user_id"].dtype == np.int64
    with pytest.raises(InvalidInput, match=r"takes rows of shape \[4\]"):
        build_inputs(CARTPOLE, ["1 2 3"])
    with pytest.raises(InvalidInput, match="needs numbers"):
        build_inputs(CARTPOLE, ["hello"])


def test_an_input_the_model_lacks_is_named(tmp_path: Path) -> None:
    png = tmp_path / "a.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(InvalidInput, match=r"no input for image \(its inputs: observation \(FP32"):
        build_inputs(CARTPOLE, [str(png)])
    with pytest.raises(InvalidInput, match="mixed inputs"):
        build_inputs(VISION, [str(png), "text"])


def test_render_labels_text_numbers_and_saved_media(tmp_path: Path) -> None:
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\0" * 20
    out = {
        "label": np.array([b"Sneaker", b"Bag"], dtype=object),
        "score": np.array([0.97, 0.5], np.float32),
        "probabilities": np.zeros((2, 10), np.float32),
        "audio": np.array([wav, wav], dtype=object),
        "explanation": np.array([b'{"a": 1}', b'{"b": 2}'], dtype=object),
    }
    lines = render(out, tmp_path, "m")
    assert lines[0] == "[0] label: Sneaker  (score 0.9700)"
    assert f"[0] audio: saved {len(wav)} bytes to {tmp_path / 'm-0.wav'}" in lines
    assert '[1] explanation: {"b": 2}' in lines and not any("probabilities" in x for x in lines)
    assert (tmp_path / "m-1.wav").read_bytes() == wav
