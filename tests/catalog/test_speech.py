"""Speech catalog models (quick builds) served over KServe V2: TTS -> ASR round trip, WAV formats, VAD."""

from __future__ import annotations

import base64
import io
import json
import wave
from collections.abc import Iterator

import numpy as np
import pytest
from catkit import AUTH, serve_quick_builds
from fastapi.testclient import TestClient

from aiaas.catalog.registry import all_specs
from aiaas.catalog.runtime.speech_audio import read_wav, resample, write_wav

NAMES = ["pocketsphinx-asr", "piper-tts", "silero-vad"]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    yield from serve_quick_builds(tmp_path_factory, "speech", NAMES)


def needs(*names: str) -> None:
    for name in names:
        missing = all_specs()[name].requires.missing()
        if missing:
            pytest.skip(f"needs: {missing}")


def post(client: TestClient, name: str, body: dict) -> dict:
    r = client.post(f"/v2/models/{name}/infer", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    return {o["name"]: o for o in r.json()["outputs"]}


def audio_body(*wavs: bytes) -> dict:
    return {
        "inputs": [
            {
                "name": "audio_b64",
                "shape": [len(wavs)],
                "datatype": "BYTES",
                "data": [base64.b64encode(w).decode() for w in wavs],
            }
        ]
    }


def transcribe(client: TestClient, *wavs: bytes) -> list[str]:
    return post(client, "pocketsphinx-asr", audio_body(*wavs))["text"]["data"]


@pytest.fixture(scope="module")
def spoken(client: TestClient) -> bytes:
    """'please call me when you get home tonight' as a Piper WAV (22.05 kHz), through the served TTS."""
    needs("piper-tts")
    out = post(
        client,
        "piper-tts",
        {
            "inputs": [
                {
                    "name": "text",
                    "shape": [1],
                    "datatype": "BYTES",
                    "data": ["Please call me when you get home tonight."],
                }
            ]
        },
    )["audio"]
    # JSON clients get non-text BYTES as base64, flagged by content_encoding
    assert out["parameters"]["content_encoding"] == "base64"
    return base64.b64decode(out["data"][0])


def test_asr_readme_example_says_hello_world(client: TestClient) -> None:
    needs("pocketsphinx-asr")
    assert post(client, "pocketsphinx-asr", json.loads(all_specs()["pocketsphinx-asr"].example))["text"]["data"] == [
        "hello world"
    ]


def test_tts_wav_round_trips_through_the_asr(client: TestClient, spoken: bytes) -> None:
    needs("pocketsphinx-asr")
    x, rate = read_wav(spoken)
    assert rate == 22050 and 1.0 < len(x) / rate < 6.0 and np.abs(x).max() > 0.3
    words = transcribe(client, spoken)[0].split()
    expected = ["please", "call", "me", "when", "you", "get", "home", "tonight"]
    assert len(set(words) & set(expected)) >= 6, words


def test_asr_reads_any_wav_layout(client: TestClient, spoken: bytes) -> None:
    """Stereo 44.1 kHz float WAV and 8 kHz 16-bit WAV of the same speech give the same words."""
    needs("pocketsphinx-asr")
    x, rate = read_wav(spoken)
    stereo = np.repeat(resample(x, rate, 44100)[:, None], 2, axis=1).astype("<f4")
    data = stereo.tobytes()
    fmt = (
        (3).to_bytes(2, "little")
        + (2).to_bytes(2, "little")
        + (44100).to_bytes(4, "little")
        + (44100 * 8).to_bytes(4, "little")
        + (8).to_bytes(2, "little")
        + (32).to_bytes(2, "little")
    )
    float_wav = (
        b"RIFF"
        + (4 + 8 + 16 + 8 + len(data)).to_bytes(4, "little")
        + b"WAVE"
        + b"fmt "
        + (16).to_bytes(4, "little")
        + fmt
        + b"data"
        + len(data).to_bytes(4, "little")
        + data
    )
    y, r2 = read_wav(float_wav)
    assert r2 == 44100 and abs(len(y) / r2 - len(x) / rate) < 0.01
    narrow = write_wav(resample(x, rate, 8000), 8000)
    reference, *others = transcribe(client, spoken, float_wav, narrow)
    for other in others:
        assert len(set(other.split()) & set(reference.split())) >= len(reference.split()) - 2


def test_asr_input_errors_are_400(client: TestClient, spoken: bytes) -> None:
    needs("pocketsphinx-asr")
    both = audio_body(spoken)
    both["inputs"].append({"name": "audio", "shape": [1], "datatype": "BYTES", "data": ["x"]})
    r = client.post("/v2/models/pocketsphinx-asr/infer", json=both, headers=AUTH)
    assert r.status_code == 400 and "exactly one" in r.json()["error"]
    r = client.post("/v2/models/pocketsphinx-asr/infer", json=audio_body(b"not a wav file"), headers=AUTH)
    assert r.status_code == 400 and "WAV" in r.json()["error"]


def test_vad_finds_the_speech_between_silences(client: TestClient, spoken: bytes) -> None:
    needs("silero-vad")
    x, rate = read_wav(spoken)
    x16 = resample(x, rate, 16000)
    clip = np.concatenate([np.zeros(16000), x16, np.zeros(24000)]).astype(np.float32)
    silence = write_wav(np.zeros(16000, np.float32), 16000)
    out = post(client, "silero-vad", audio_body(write_wav(clip, 16000), silence))
    segments = [json.loads(s) for s in out["segments"]["data"]]
    assert segments[1] == [] and out["speech_ratio"]["data"][1] == 0.0
    assert len(segments[0]) >= 1
    start, end = segments[0][0][0], segments[0][-1][1]
    speech_s = len(x16) / 16000
    assert 0.7 < start < 1.4 and 1.0 + speech_s - 0.6 < end < 1.0 + speech_s + 0.4, segments[0]
    assert 0.3 < out["speech_ratio"]["data"][0] < 0.8


def test_vad_readme_example(client: TestClient) -> None:
    needs("silero-vad")
    out = post(client, "silero-vad", json.loads(all_specs()["silero-vad"].example))
    assert len(json.loads(out["segments"]["data"][0])) == 1 and out["speech_ratio"]["data"][0] > 0.5


def test_read_wav_formats() -> None:
    """8-bit unsigned and 24-bit PCM decode to the same signal; a non-WAV is a clear error."""
    t = np.arange(800) / 8000
    sig = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1), w.setsampwidth(3), w.setframerate(8000)
        v = np.round(sig * (1 << 23)).astype(np.int32)
        w.writeframes(np.stack([v & 255, (v >> 8) & 255, (v >> 16) & 255], axis=1).astype(np.uint8).tobytes())
    y24, r = read_wav(buf.getvalue())
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1), w.setsampwidth(1), w.setframerate(8000)
        w.writeframes((np.round(sig * 127) + 128).astype(np.uint8).tobytes())
    y8, _ = read_wav(buf.getvalue())
    assert r == 8000
    np.testing.assert_allclose(y24, sig, atol=1e-6)
    np.testing.assert_allclose(y8, sig, atol=1.5 / 128)
    from aiaas.errors import InvalidInput

    with pytest.raises(InvalidInput, match="WAV"):
        read_wav(b"RIFF\x00\x00\x00\x00AVI LIST")


def test_wer_counts_word_edits() -> None:
    from aiaas.catalog.models.speech import wer

    assert wer(["the cat sat on the mat"], ["the cat sat on the mat"]) == 0.0
    assert wer(["the cat sat on the mat"], ["a cat sat on mat"]) == pytest.approx(2 / 6)
    assert wer(["I'm here"], ["i am here"]) == 0.0  # contractions are spelling, not recognition errors


def test_verbose_json_transcription_has_word_timestamps(client: TestClient, spoken: bytes) -> None:
    needs("pocketsphinx-asr")
    r = client.post(
        "/v1/audio/transcriptions",
        headers=AUTH,
        files={"file": ("a.wav", spoken, "audio/wav")},
        data={"model": "pocketsphinx-asr", "response_format": "verbose_json"},
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    words = doc["words"]
    assert " ".join(w["word"] for w in words) == doc["text"] and len(words) >= 6
    starts = [w["start"] for w in words]
    assert starts == sorted(starts) and all(w["start"] < w["end"] for w in words)
    assert words[0]["start"] >= 0 and words[-1]["end"] <= doc["duration"] + 0.05
    assert doc["segments"][0]["start"] == words[0]["start"] and doc["segments"][0]["text"] == doc["text"]
