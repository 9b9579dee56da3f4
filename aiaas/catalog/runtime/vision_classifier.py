"""Fashion-MNIST classifier: any photo or drawing of a garment -> one of the 10 Fashion-MNIST classes.

The version directory holds ``model.onnx`` (input ``pixels`` UINT8 [N, 28, 28], output ``probabilities``
FP32 [N, 10]), servable on its own; this class adds image decoding in front and readable labels behind.

Inputs (exactly one): ``image`` (PNG/JPEG/... bytes of any size), ``image_b64`` (the same as base64 text) or
``pixels`` (UINT8 [N, 28, 28], already in Fashion-MNIST form: a light garment on a black background).
Outputs: ``label`` (class name), ``score`` (its probability) and ``probabilities`` [N, 10] (card order).

Images are converted the way Fashion-MNIST itself was made from Zalando's product photos (Xiao et al. 2017):
grayscale, trim the borders that have the background colour, scale the longest edge to 28, centre on a
28x28 canvas, and negate. We negate only when the background is light (the median of the border pixels is
above mid-grey, as for product photos on white); an image with a dark background is not negated. Levels are
stretched so the background is 0 and the brightest pixel 255. A 28x28 image is taken as it is (negated when
its background is light): it already is in Fashion-MNIST form, and dataset images round-trip unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aiaas.catalog.runtime.fashion_labels import CLASSES
from aiaas.catalog.runtime.vision_images import bytes_tensor, decode, encoded_images, gray
from aiaas.errors import InvalidInput
from aiaas.runtime.base import BlockingModel, Tensors

SIDE = 28


def fashion_pixels(g: np.ndarray) -> np.ndarray:
    """uint8 [28, 28] Fashion-MNIST-style pixels of a uint8 grayscale image of any size."""
    from PIL import Image

    x = g.astype(np.float32)
    border = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
    bg = float(np.median(border))
    if bg > 127.5:  # dark garment on a light background: negate, as Fashion-MNIST did
        x, bg = 255.0 - x, 255.0 - bg
    if x.shape == (SIDE, SIDE):  # already Fashion-MNIST sized: kept as it is (after negation)
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)
    x = np.clip(x - bg, 0.0, None)
    peak = float(x.max())
    if peak <= 0.0:
        return np.zeros((SIDE, SIDE), np.uint8)  # a blank image: nothing to trim or scale
    ys, xs = np.nonzero(x > 0.05 * peak)  # trim borders within 5% of the background, as Fashion-MNIST did
    x = x[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] * (255.0 / peak)
    h, w = x.shape
    if max(h, w) != SIDE:
        scale = SIDE / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        x = np.asarray(
            Image.fromarray(np.ascontiguousarray(x, dtype=np.float32)).resize(size, Image.Resampling.LANCZOS),
            dtype=np.float32,
        )
        h, w = x.shape
    canvas = np.zeros((SIDE, SIDE), np.float32)
    top, left = (SIDE - h) // 2, (SIDE - w) // 2
    canvas[top : top + h, left : left + w] = x
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


class FashionClassifier(BlockingModel):
    def load(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        threads = self.config.runtime.intra_op_threads or self.context.default_intra_op_threads
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            str(self.version_dir / "model.onnx"), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.classes = [str(c) for c in self.config.parameters.get("classes", CLASSES)]

    def pixels(self, inputs: Tensors) -> np.ndarray:
        images = encoded_images(inputs, others=("pixels",))
        if images is None:
            px = np.asarray(inputs["pixels"])
            if px.ndim != 3 or px.shape[1:] != (SIDE, SIDE):
                raise InvalidInput(f"pixels must have shape [N, {SIDE}, {SIDE}], got {list(px.shape)}")
            return px.astype(np.uint8, copy=False)
        return (
            np.stack([fashion_pixels(gray(decode(b))) for b in images])
            if images
            else np.zeros((0, SIDE, SIDE), np.uint8)
        )

    def run(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        px = self.pixels(inputs)
        if len(px) == 0:
            return {
                "label": bytes_tensor([]),
                "score": np.zeros(0, np.float32),
                "probabilities": np.zeros((0, len(self.classes)), np.float32),
            }
        probs = self.session.run(None, {"pixels": np.ascontiguousarray(px)})[0].astype(np.float32)
        best = probs.argmax(axis=1)
        return {
            "label": bytes_tensor([self.classes[i] for i in best]),
            "score": probs[np.arange(len(best)), best],
            "probabilities": probs,
        }

    def unload(self) -> None:
        self.session = None
