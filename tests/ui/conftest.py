"""Browser tests of the web console: one real server per module (uvicorn in a thread on a free loopback
port, database governance on SQLite) serving tiny test models and the cheapest quick-built catalog models, and
Debian's chromium driven by Playwright (its own browser download does not work here)."""

from __future__ import annotations

import importlib.util
import io
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The browser tests need Debian's chromium (scripts/install-system-packages.sh) and pytest-playwright (the dev
# extra); without them they are left out, with the reason printed once.
_MISSING = [
    what
    for what, ok in (
        ("chromium (apt-get install chromium)", Path(CHROMIUM).exists()),
        ("pytest-playwright", importlib.util.find_spec("pytest_playwright") is not None),
    )
    if not ok
]
collect_ignore = ["test_console.py"] if _MISSING else []
if _MISSING:
    print(f"tests/ui: browser tests left out, missing: {', '.join(_MISSING)}")

ADMIN_KEY = "ui-admin-key"
CATALOG = ["vader-sentiment", "breast-cancer", "astar-planner", "chess-stockfish", "silero-vad"]

MODELS_PY = '''
import io, json
import numpy as np
from PIL import Image
from aiaas.runtime import Model

class DarkBox(Model):
    """The bounding box of the dark pixels of each image (a stand-in face detector)."""
    def load(self): pass
    def predict(self, inputs, parameters):
        import base64
        out, counts = [], []
        for b in inputs["image_b64"].reshape(-1):
            g = np.asarray(Image.open(io.BytesIO(base64.b64decode(bytes(b)))).convert("L"))
            ys, xs = np.nonzero(g < 128)
            boxes = [] if len(xs) == 0 else [{"x": int(xs.min()), "y": int(ys.min()), "w": int(xs.max() - xs.min() + 1),
            "h": int(ys.max() - ys.min() + 1)}]
            out.append(json.dumps(boxes).encode()); counts.append(len(boxes))
        return {"faces": np.array(out, dtype=object), "count": np.array(counts, dtype=np.int32)}

class WordHash(Model):
    """Deterministic 8-dim unit vectors: each word adds 1 at crc32(word) mod 8 (a stand-in sentence embedder)."""
    def load(self): pass
    def predict(self, inputs, parameters):
        import zlib
        vecs = np.zeros((inputs["text"].size, 8), np.float32)
        for row, text in enumerate(inputs["text"].reshape(-1)):
            for word in bytes(text).lower().split():
                vecs[row, zlib.crc32(word) % 8] += 1.0
        return {"embedding": vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-9)}
'''


@dataclass
class Server:
    url: str
    app: Any
    home: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def png(w: int = 64, h: int = 48, box: tuple[int, int, int, int] = (10, 8, 30, 28)) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("L", (w, h), 255)
    ImageDraw.Draw(img).rectangle(box, fill=0)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _write_models(models: Path) -> None:
    from models import mlp  # tests/models.py (tests/ is on sys.path, as for every test package)

    (models / "mlp" / "1").mkdir(parents=True)
    mlp(models / "mlp" / "1" / "model.onnx")
    (models / "mlp" / "model.yaml").write_text("backend: onnx\ntask: classification\nmax_batch_size: 8\n")
    (models / "private-mlp" / "1").mkdir(parents=True)
    mlp(models / "private-mlp" / "1" / "model.onnx")
    (models / "private-mlp" / "model.yaml").write_text("backend: onnx\nowner: globex\n")
    _python_model(
        models / "dark-box",
        "DarkBox",
        "face-detection",
        "[{name: image_b64, datatype: BYTES, shape: [-1]}]",
        "[{name: faces, datatype: BYTES, shape: [-1]}, {name: count, datatype: INT32, shape: [-1]}]",
    )
    _python_model(
        models / "tiny-embed",
        "WordHash",
        "text-embedding",
        "[{name: text, datatype: BYTES, shape: [-1]}]",
        "[{name: embedding, datatype: FP32, shape: [-1, 8]}]",
    )


def _python_model(d: Path, cls: str, task: str, inputs: str, outputs: str) -> None:
    (d / "1").mkdir(parents=True)
    (d / "1" / "model.py").write_text(MODELS_PY)
    (d / "model.yaml").write_text(
        f"backend: python\ntask: {task}\nparameters: {{class: 'model.py:{cls}'}}\n"
        f"inputs: {inputs}\noutputs: {outputs}\n"
    )


def _catalog(models: Path) -> None:
    from aiaas.catalog.builder import build
    from aiaas.catalog.registry import all_specs
    from aiaas.registry import ModelRepository

    specs, repo = all_specs(), ModelRepository(models)
    for name in CATALOG:
        if specs[name].requires.missing():
            continue  # its playground test skips with the install command
        st = build(specs[name], repo, quick=True, progress=lambda f, m: None)
        assert st.state == "built", st.detail


def _llm(models: Path, tmp: Path) -> None:
    try:
        from aiaas.llm.tiny import build_model
    except ImportError:
        return
    try:
        build_model(tmp / "hf")
    except ImportError:
        return
    shutil.copytree(tmp / "hf", models / "tiny-llm" / "1")
    (models / "tiny-llm" / "model.yaml").write_text(
        "backend: llm\ntask: text-generation\nparameters: {max_num_seqs: 2, max_waiting: 4, default_max_tokens: 16}\n"
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    import uvicorn

    from aiaas.server.app import create_app
    from aiaas.settings import Settings

    home = tmp_path_factory.mktemp("ui") / "home"
    models = home / "models"
    models.mkdir(parents=True)
    _write_models(models)
    _catalog(models)
    _llm(models, tmp_path_factory.mktemp("llm"))
    app = create_app(Settings(home=home, admin_key=ADMIN_KEY, catalog="none", training_cores=1))  # type: ignore[call-arg]
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not srv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield Server(f"http://127.0.0.1:{port}", app, home)
    finally:
        srv.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ["--no-sandbox"]}


def sign_in(page: Any, server: Server, key: str = ADMIN_KEY, path: str = "/ui/models") -> None:
    page.goto(server.url + "/ui/login?next=" + path)
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(".*" + re.escape(path) + ".*"))


AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations of the page as it is now."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["html"][:120] for n in v["nodes"][:3]]}
        for v in result
        if v["impact"] in ("serious", "critical")
    ]
