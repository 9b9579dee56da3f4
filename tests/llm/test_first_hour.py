"""The first hour against the real (in-thread) server of tests/llm: ``aiaas run``, ``aiaas chat``, ``aiaas ps``,
vLLM-style LLM metrics and V2 parameter checks of an llm model."""

from __future__ import annotations

import io
import json
import wave
from pathlib import Path
from typing import Any

import numpy as np
from typer.testing import CliRunner

from aiaas.cli.main import app

from .conftest import ADMIN_KEY, Server

runner = CliRunner()


def cli(server: Server, *args: str, input: str | None = None) -> tuple[int, str]:
    result = runner.invoke(
        app, [*map(str, args), "--url", server.url, "--api-key", ADMIN_KEY], input=input, env={"COLUMNS": "200"}
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_run_text_models_audio_out_and_in(server: Server, tmp_path: Path) -> None:
    code, out = cli(server, "run", "tiny-tts", "hello there", "--out", tmp_path)
    assert code == 0, out
    wav = tmp_path / "tiny-tts.wav"
    assert f"audio: saved {wav.stat().st_size} bytes to {wav}" in out.replace("\n", "")
    with wave.open(str(wav)) as w:
        assert w.getnframes() == 100 * len("hello there")
    code, out = cli(server, "run", "tiny-asr", wav)  # a file path goes to the audio input
    assert code == 0 and "text: heard 1100 frames at 8000 Hz" in out, out
    code, out = cli(server, "infer", "tiny-asr", "-", input=None)
    assert code == 1 and "error:" in out


def test_run_batch_json_and_stdin(server: Server) -> None:
    code, out = cli(server, "run", "tiny-embed", "abc", "de", "--json")
    assert code == 0, out
    emb = np.asarray(json.loads(out)["embedding"])
    assert emb.shape == (2, 8) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    code, out = cli(server, "run", "tiny-embed", "-", input="abc")
    assert code == 0 and out.startswith("embedding: [") and "[0]" not in out, out


def test_run_llm_with_parameters_and_clear_errors(server: Server) -> None:
    code, out = cli(server, "run", "tiny-llm", "The cat", "-p", "max_tokens=3")
    assert code == 0 and out.startswith("text: "), out
    code, out = cli(server, "run", "nope", "x")
    assert code == 1 and "unknown model 'nope'" in out and "Traceback" not in out
    code, out = cli(server, "run", "tiny-embed")
    assert code == 1 and "give an input for 'tiny-embed'" in out
    code, out = cli(server, "run", "tiny-llm", "hi", "-p", "oops")
    assert code == 1 and "expected KEY=VALUE" in out


def test_chat_multi_turn_streams(server: Server) -> None:
    code, out = cli(server, "chat", "tiny-llm", "-m", "hello", "-m", "again", "--max-tokens", "4")
    assert code == 0, out
    assert len(out.strip().splitlines()) == 2  # one streamed answer line per turn
    code, out = cli(server, "chat", "tiny-llm", "--max-tokens", "3", input="hi\n/bye\nnot sent\n")
    assert code == 0 and "chatting with tiny-llm" in out
    code, out = cli(server, "chat", "tiny-embed", "-m", "hi")
    assert code == 1 and "error:" in out and "Traceback" not in out


def test_ps_lists_resident_versions(server: Server) -> None:
    cli(server, "run", "tiny-embed", "warm")
    code, out = cli(server, "ps", "--interval", "0.2", "--json")
    assert code == 0, out
    doc = json.loads(out)
    rows = {m["name"]: m for m in doc["models"]}
    assert set(rows) >= {"tiny-llm", "tiny-embed", "tiny-asr", "tiny-tts"}
    assert rows["tiny-embed"]["inference_count"] >= 1 and rows["tiny-embed"]["replicas"] == 1
    assert rows["tiny-embed"]["requests_per_s"] == 0 and doc["process_memory_bytes"] > 10_000_000
    assert rows["tiny-llm"]["memory_bytes"] > 0  # the process grew while the LLM's weights loaded
    code, out = cli(server, "ps", "--interval", "0")
    assert code == 0 and "tiny-llm" in out and "req/s" in out


def _wav(n: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000), w.writeframes(b"\0\0" * n)
    return buf.getvalue()


def test_llm_metrics_vllm_style(server: Server) -> None:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict[str, float]:
        text = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).text
        return {
            s.name + ("" if s.labels.get("model") in (None, "tiny-llm") else "?"): s.value
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
            if s.labels.get("model") in (None, "tiny-llm") and s.name.startswith("aiaas_llm_")
        }

    before = scrape()
    r = httpx.post(
        server.url + "/v1/completions",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=60,
        json={"model": "tiny-llm", "prompt": "The cat sat", "max_tokens": 5, "ignore_eos": True},
    )
    usage = r.json()["usage"]
    after = scrape()
    delta = {k: after[k] - before.get(k, 0.0) for k in after}
    assert delta["aiaas_llm_prompt_tokens_total"] == usage["prompt_tokens"]
    assert delta["aiaas_llm_generation_tokens_total"] == usage["completion_tokens"] == 5
    assert delta["aiaas_llm_time_to_first_token_seconds_count"] == 1
    assert delta["aiaas_llm_time_per_output_token_seconds_count"] == 1
    assert after["aiaas_llm_num_requests_running"] == 0 and after["aiaas_llm_num_requests_waiting"] == 0
    assert after["aiaas_llm_kv_cache_usage_perc"] == 0.0  # nothing reserved once the request is done


def _llm_samples(server: Server) -> dict[str, float]:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).text
    return {
        s.name: s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.labels.get("model") == "tiny-llm" and s.name.startswith("aiaas_llm_")
    }


def test_v2_llm_requests_count_tokens_and_meter_them_like_v1(server: Server, monkeypatch: Any) -> None:
    import httpx

    usage = server.app.state.services.governance.usage
    rows: list[Any] = []
    record = usage.record
    monkeypatch.setattr(usage, "record", lambda row: (rows.append(row), record(row)))
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    v1 = httpx.post(
        server.url + "/v1/completions",
        headers=headers,
        timeout=60,
        json={"model": "tiny-llm", "prompt": "The cat sat", "max_tokens": 4, "ignore_eos": True},
    )
    assert v1.status_code == 200, v1.text
    prompt_tokens = v1.json()["usage"]["prompt_tokens"]
    before = _llm_samples(server)
    body = {
        "inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["The cat sat", "The cat sat"]}],
        "parameters": {"max_tokens": 4, "ignore_eos": True},
    }
    r = httpx.post(server.url + "/v2/models/tiny-llm/infer", json=body, headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    after = _llm_samples(server)
    delta = {k: after[k] - before.get(k, 0.0) for k in after}
    assert delta["aiaas_llm_prompt_tokens_total"] == 2 * prompt_tokens  # the same tokenizer as /v1
    assert delta["aiaas_llm_generation_tokens_total"] == 2 * 4
    assert delta["aiaas_llm_time_to_first_token_seconds_count"] == 2  # one per sequence, as vLLM counts
    assert delta["aiaas_llm_time_per_output_token_seconds_count"] == 2
    v1_row, v2_row = [row for row in rows if row.model == "tiny-llm"]
    assert (v1_row.endpoint, v1_row.units_in, v1_row.units_out) == ("openai.completions", prompt_tokens, 4)
    assert (v2_row.endpoint, v2_row.units_in, v2_row.units_out) == ("v2.infer", 2 * prompt_tokens, 2 * 4)


def test_v2_llm_parameters_are_checked_like_v1(server: Server) -> None:
    import httpx

    def infer(parameters: dict) -> httpx.Response:
        body = {
            "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["The cat"]}],
            "parameters": parameters,
        }
        return httpx.post(
            server.url + "/v2/models/tiny-llm/infer",
            json=body,
            timeout=60,
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )

    for params, words in [
        ({"max_tokens": -5}, "parameters.max_tokens: Input should be greater than or equal to 1"),
        ({"max_tokens": 3, "max_tokenz": 4}, "unknown parameter 'max_tokenz'"),
        ({"temperature": 3}, "parameters.temperature"),
        ({"max_tokens": "5"}, "parameters.max_tokens"),
        ({"max_tokens": 10**6}, "maximum context length"),
    ]:
        r = infer(params)
        assert r.status_code == 400 and words in r.json()["error"], (params, r.text)
    r = infer({"max_tokens": 3, "temperature": 1, "seed": 7, "top_k": 5, "binary_data_output": False})
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["name"] == "text"


def test_speech_in_every_openai_format(server: Server) -> None:
    import shutil

    import httpx
    import pytest

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (scripts/install-system-packages.sh)")

    def speech(fmt: str) -> httpx.Response:
        return httpx.post(
            server.url + "/v1/audio/speech",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            json={"model": "tiny-tts", "input": "hello world", "response_format": fmt},
            timeout=60,
        )

    seconds = 100 * len("hello world") / 8000  # the tiny synthesizer: 100 samples per character at 8 kHz
    checks = {
        "mp3": lambda b: b[:3] == b"ID3" or b[0] == 0xFF,
        "opus": lambda b: b[:4] == b"OggS" and b"OpusHead" in b[:64],
        "aac": lambda b: b[0] == 0xFF and b[1] & 0xF0 == 0xF0,  # ADTS sync word
        "flac": lambda b: b[:4] == b"fLaC",
        "pcm": lambda b: abs(len(b) - seconds * 24000 * 2) <= 2 * 2400,  # 16-bit mono at 24 kHz
    }
    types = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac", "pcm": "audio/pcm"}
    for fmt, ok in checks.items():
        r = speech(fmt)
        assert r.status_code == 200, (fmt, r.text)
        assert r.headers["content-type"] == types[fmt] and ok(r.content), fmt
