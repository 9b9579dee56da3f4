"""``ocr``: the PP-OCRv4 detection/recognition ONNX models shipped in pip ``rapidocr-onnxruntime``, measured
on text images rendered at build time with the DejaVu fonts (character error rate, exact lines)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from aiaas.catalog.assets import asset_bytes
from aiaas.catalog.common import size_mb
from aiaas.catalog.models.vision_common import (
    IMAGE_IN,
    OPENCV,
    PILLOW,
    b64_example,
    bytes_rows,
    python_latency_ms,
    served_instance,
)
from aiaas.registry.catalogspec import BuildContext, BuildResult, CatalogSpec, Floor, Requirement, timed

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")  # Debian fonts-dejavu-core: the fonts OCR test lines are drawn in

OCR_REQ = Requirement(
    pip=(
        PILLOW,
        OPENCV,
        ("pyclipper", "pyclipper==1.4.0"),
        ("shapely", "shapely==2.2.0"),
        # its declared dependency is the GUI opencv-python (needs libGL); we use the headless build instead
        ("rapidocr_onnxruntime", "--no-deps rapidocr-onnxruntime==1.4.4"),
    ),
    apt=(("fonts-dejavu-core", str(DEJAVU / "DejaVuSans.ttf")),),
)

OCR_CONFIG: dict[str, Any] = {
    "backend": "python",
    "task": "ocr",
    "description": "Text recognition in images (PP-OCRv4 detection + recognition, ONNX)",
    "max_batch_size": 8,
    "inputs": IMAGE_IN,
    "outputs": [
        {"name": "text", "datatype": "BYTES", "shape": [-1]},
        {"name": "boxes", "datatype": "BYTES", "shape": [-1]},
    ],
    "parameters": {
        "class": "aiaas.catalog.runtime.vision_ocr:OcrModel",
        "det_limit_type": "max",
        "det_limit_side_len": 960,
    },
}

OCR_WORDS = (
    "invoice",
    "total",
    "amount",
    "due",
    "date",
    "order",
    "number",
    "customer",
    "account",
    "payment",
    "received",
    "shipping",
    "address",
    "street",
    "city",
    "phone",
    "email",
    "please",
    "thank",
    "you",
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "model",
    "server",
    "request",
    "batch",
    "image",
    "text",
    "price",
    "tax",
    "discount",
    "balance",
    "reference",
    "ticket",
    "station",
    "platform",
    "train",
    "departs",
    "arrives",
    "minutes",
)

OCR_FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSansCondensed.ttf",
    "DejaVuSerif-Italic.ttf",
)


def ocr_samples(n: int, seed: int) -> list[tuple[str, bytes]]:
    """(line of text, PNG of it): words and numbers in DejaVu fonts of 18-40 px, dark on a light background."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        words = [str(w) for w in rng.choice(OCR_WORDS, size=int(rng.integers(2, 6)))]
        if rng.random() < 0.6:
            words.insert(int(rng.integers(0, len(words) + 1)), str(int(rng.integers(1, 99999))))
        if rng.random() < 0.5:
            words[0] = words[0].capitalize()
        text = " ".join(words)
        font = ImageFont.truetype(str(DEJAVU / OCR_FONTS[i % len(OCR_FONTS)]), int(rng.integers(18, 41)))
        left, top, right, bottom = font.getbbox(text)
        pad = int(rng.integers(8, 40))
        bg, ink = int(rng.integers(215, 256)), int(rng.integers(0, 60))
        img = Image.new("L", (int(right - left + 2 * pad), int(bottom - top + 2 * pad)), bg)
        ImageDraw.Draw(img).text((pad - left, pad - top), text, font=font, fill=ink)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        out.append((text, buf.getvalue()))
    return out


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def ocr_scores(pairs: list[tuple[str, str]]) -> dict[str, float]:
    """CER with and without spaces (summed edits / summed reference length) and exact-line rate."""

    def cer(strip: bool) -> float:
        def norm(s: str) -> str:
            return "".join(s.split()) if strip else " ".join(s.split())

        edits = sum(edit_distance(norm(ref), norm(hyp)) for ref, hyp in pairs)
        return edits / max(1, sum(len(norm(ref)) for ref, _ in pairs))

    exact = sum(" ".join(ref.split()) == " ".join(hyp.split()) for ref, hyp in pairs) / max(1, len(pairs))
    return {"cer": cer(False), "cer_no_spaces": cer(True), "exact_match": exact}


@timed
def build_ocr(ctx: BuildContext) -> BuildResult:
    import rapidocr_onnxruntime

    ctx.progress(0.05, "loading PP-OCRv4 (rapidocr-onnxruntime)")
    marker = ctx.workdir / "ocr.json"
    from importlib.metadata import version as pkg_version

    marker.write_text(json.dumps({"engine": "rapidocr-onnxruntime", "version": pkg_version("rapidocr-onnxruntime")}))
    model = served_instance(OCR_CONFIG, ctx.workdir)
    n = 8 if ctx.quick else 60
    samples = ocr_samples(n, seed=ctx.seed + 4242)
    pairs = []
    for k, (ref, data) in enumerate(samples):
        hyp = model.run({"image": bytes_rows(data)}, {})["text"][0].decode()
        pairs.append((ref, hyp))
        ctx.progress(0.1 + 0.85 * (k + 1) / n, f"{k + 1}/{n} lines read")
    metrics = {**ocr_scores(pairs), "test_images": float(n)}
    metrics.update(python_latency_ms(model, {"image": bytes_rows(samples[0][1])}, runs=5 if ctx.quick else 10))
    models_dir = Path(rapidocr_onnxruntime.__file__).parent / "models"
    metrics["size_mb"] = size_mb(models_dir)
    wrong = [{"expected": r, "read": h} for r, h in pairs if " ".join(r.split()) != " ".join(h.split())][:10]
    card = {
        "source": "PaddleOCR PP-OCRv4 detection + recognition and v2.0 direction classifier (ONNX), shipped in "
        f"pip rapidocr-onnxruntime {pkg_version('rapidocr-onnxruntime')}",
        "license": "Apache-2.0 (PaddleOCR models and RapidOCR)",
        "notes": (
            f"Measured on {n} single-line images rendered at build time (seed {ctx.seed + 4242}): 2-6 English "
            "words and numbers in 6 DejaVu fonts (sans, serif, mono, bold, condensed, italic) at 18-40 px, "
            "dark ink on a light background. cer: character error rate with spaces (whitespace runs collapsed); "
            "cer_no_spaces: the same with all spaces removed; exact_match: lines read exactly. Detection at "
            "det_limit_type max / 960 px (PaddleOCR's defaults; rapidocr's min/736 upscaled text strips, split "
            "them and lost spaces); the image gets a margin of repeated edge pixels first. The recognizer is the "
            "multilingual (Chinese + English) PP-OCRv4 model."
        ),
        "extra": {"errors": wrong, "engine_version": pkg_version("rapidocr-onnxruntime")},
    }
    ctx.write({"ocr.json": marker}, OCR_CONFIG, card)
    ctx.progress(1.0, f"CER {metrics['cer']:.3f}")
    return BuildResult(metrics)


OCR_EXAMPLE_PNG = asset_bytes("ocr_example.png")  # assets/ocr_example.png

SPEC = CatalogSpec(
    name="ocr",
    build_s=16,  # measured: a first start on 2 cores at top CPU priority (2026-12-03)
    scenario="vision",
    task="ocr",
    summary="Text in images -> lines and boxes (PP-OCRv4, ONNX)",
    source="PaddleOCR PP-OCRv4 via pip rapidocr-onnxruntime",
    license="Apache-2.0",
    build=build_ocr,
    requires=OCR_REQ,
    floors=(Floor("cer", "<=", 0.05),),  # aiaas's sanity floor on its rendered lines
    example=b64_example(OCR_EXAMPLE_PNG),
)
