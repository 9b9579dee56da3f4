"""Rule-based machine translation with Apertium (Debian ``apertium`` + a language-pair package).

Each text row runs through the ``apertium`` command (one short-lived process per row: Apertium's pipeline of
finite-state tools starts in a few hundred ms and keeps no state between texts). Rows of one batch run in a
small thread pool; each run has a timeout, and texts above ``max_kb`` are refused up front with a clear 400
instead of tying up a worker.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiaas.catalog.runtime.nlp_common import bytes_tensor, texts
from aiaas.errors import InferenceError, InvalidInput
from aiaas.runtime import BlockingModel, Tensors


def apertium_pairs() -> list[str]:
    """The translation directions installed here (``apertium -l``), [] when apertium is missing."""
    exe = shutil.which("apertium")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-l"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [ln.strip() for ln in out.splitlines() if ln.strip()]


def translate(text: str, pair: str, timeout_s: float = 30.0, exe: str = "apertium") -> str:
    """One text through ``apertium -u PAIR`` (-u: no '*' marks on unknown words, they pass through as is)."""
    if not text.strip():
        return text
    try:
        done = subprocess.run(
            [exe, "-u", pair], input=text.encode("utf-8"), capture_output=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise InferenceError(f"apertium {pair} took more than {timeout_s:g}s on a {len(text)}-character text") from None
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip()[-300:]
        raise InferenceError(f"apertium {pair} failed (exit {done.returncode}): {err}")
    out = done.stdout.decode("utf-8", "replace").strip()
    if "  " not in text:  # apertium leaves a double blank where it drops a word ("y  quiero")
        out = re.sub(r"(?<=\S) {2,}(?=\S)", " ", out)
    # apertium may add or drop blanks at the ends (" Estamos yendo..."): keep the caller's own
    lead, trail = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()) :]
    return lead + out + trail


class ApertiumTranslator(BlockingModel):
    """``text`` -> ``text``; parameters (config): ``pair`` e.g. "eng-spa", ``max_kb``, ``timeout_s``, ``workers``."""

    def load(self) -> None:
        params = self.config.parameters
        self.pair = str(params["pair"])
        self.max_bytes = int(float(params.get("max_kb", 16)) * 1024)
        self.timeout_s = float(params.get("timeout_s", 30))
        exe = shutil.which("apertium")
        if exe is None:
            raise ValueError("apertium is not installed: apt-get install -y apertium apertium-eng-spa")
        self.exe = exe
        pairs = apertium_pairs()
        if self.pair not in pairs:
            raise ValueError(
                f"apertium has no {self.pair!r} pair installed (have: {pairs}); apt-get install -y apertium-eng-spa"
            )
        self.pool = ThreadPoolExecutor(
            max(1, int(params.get("workers", 2))), thread_name_prefix=f"apertium-{self.pair}"
        )

    def run(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        rows = texts(inputs)
        for i, t in enumerate(rows):
            size = len(t.encode("utf-8"))
            if size > self.max_bytes:
                raise InvalidInput(
                    f"text row {i} is {size / 1024:.1f} KB; this model translates at most "
                    f"{self.max_bytes / 1024:g} KB per row: split the text into smaller parts"
                )
        out = list(self.pool.map(lambda t: translate(t, self.pair, self.timeout_s, self.exe), rows))
        return {"text": bytes_tensor(out)}

    def unload(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
