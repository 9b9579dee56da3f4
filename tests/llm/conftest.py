"""A real aiaas server (uvicorn in a thread, loopback, free port) serving a tiny random LLM built locally,
plus tiny python-backend embedding, speech-recognition and speech-synthesis models written here."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers", reason="the llm extra is not installed")
pytest.importorskip("openai", reason="the llm extra is not installed")

from aiaas.llm.tiny import build_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from v2kit import free_port, uvicorn_thread

ADMIN_KEY = "test-admin-key"

PY_MODELS = '''
import io, wave
import numpy as np
from aiaas.runtime import Model

class Embed(Model):
    """Deterministic 8-dim unit vectors: the byte histogram of the text, folded."""
    def load(self): pass
    def predict(self, inputs, parameters):
        rows = []
        for t in inputs["text"].reshape(-1):
            v = np.zeros(8, np.float32)
            for i, b in enumerate(bytes(t)):
                v[(b + i) % 8] += 1.0
            rows.append(v / np.linalg.norm(v))
        return {"embedding": np.stack(rows)}

class Asr(Model):
    """'heard N frames at R Hz' for each WAV."""
    def load(self): pass
    def predict(self, inputs, parameters):
        out = []
        for a in inputs["audio"].reshape(-1):
            with wave.open(io.BytesIO(bytes(a))) as w:
                out.append(f"heard {w.getnframes()} frames at {w.getframerate()} Hz".encode())
        return {"text": np.array(out, dtype=object)}

class Tts(Model):
    """A WAV with 100 samples per character of the text."""
    def load(self): pass
    def predict(self, inputs, parameters):
        out = []
        for t in inputs["text"].reshape(-1):
            buf = io.BytesIO()
            with wave.open(buf, "wb") as w:
                w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
                w.writeframes(np.zeros(100 * len(bytes(t)), np.int16).tobytes())
            out.append(buf.getvalue())
        return {"audio": np.array(out, dtype=object)}
'''


def _py_model(models: Path, name: str, cls: str, inp: str, out: str, out_type: str, out_shape: str, task: str) -> None:
    d = models / name
    (d / "1").mkdir(parents=True)
    (d / "1" / "model.py").write_text(PY_MODELS)
    (d / "model.yaml").write_text(
        f"backend: python\ntask: {task}\nparameters: {{class: 'model.py:{cls}'}}\n"
        f"inputs: [{{name: {inp}, datatype: BYTES, shape: [-1]}}]\n"
        f"outputs: [{{name: {out}, datatype: {out_type}, shape: {out_shape}}}]\n"
    )


LLM_YAML = """backend: llm
task: text-generation
parameters: {max_num_seqs: 4, max_waiting: 4, default_max_tokens: 32}
"""


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("tiny-llm") / "hf")


@dataclass
class Server:
    url: str
    app: Any

    def engine(self, name: str = "tiny-llm") -> Any:
        from aiaas.service.openai.engine import llm_engine

        return llm_engine(self.app.state.services.models.resolve(name, None))


@pytest.fixture(scope="module")
def server(tiny_llm: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from aiaas.server.app import create_app
    from aiaas.settings import Settings

    home = tmp_path_factory.mktemp("home")
    models = home / "models"
    (models / "tiny-llm").mkdir(parents=True)
    shutil.copytree(tiny_llm, models / "tiny-llm" / "1")
    (models / "tiny-llm" / "model.yaml").write_text(LLM_YAML)
    _py_model(models, "tiny-embed", "Embed", "text", "embedding", "FP32", "[-1, 8]", "embedding")
    _py_model(models, "tiny-asr", "Asr", "audio", "text", "BYTES", "[-1]", "speech-recognition")
    _py_model(models, "tiny-tts", "Tts", "text", "audio", "BYTES", "[-1]", "speech-synthesis")
    app = create_app(Settings(home=home, admin_key=ADMIN_KEY, catalog="none"))  # type: ignore[call-arg]
    port = free_port()
    with uvicorn_thread(app, port):
        yield Server(f"http://127.0.0.1:{port}", app)


@pytest.fixture
def client(server: Server) -> Any:
    import openai

    return openai.OpenAI(base_url=server.url + "/v1", api_key=ADMIN_KEY, max_retries=0, timeout=60)
