"""Face detection with OpenCV's Haar cascade (Viola-Jones, ``haarcascade_frontalface_default.xml`` shipped in
pip ``opencv-python-headless`` 4.x; 5.x no longer ships cascades, so the build copies the file into the
version directory and the model does not depend on where OpenCV keeps it).

Input ``image`` (PNG/JPEG bytes) or ``image_b64``. Outputs ``faces`` (JSON: ``[{"x", "y", "w", "h"}]`` in
pixels of the image as sent, after its EXIF rotation) and ``count`` (INT32). Frontal, upright faces of at
least ``min_size`` pixels only: profiles, strong rotations and tiny faces are missed.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from aiaas.catalog.runtime.vision_images import bytes_tensor, decode, encoded_images, gray
from aiaas.errors import InvalidInput
from aiaas.runtime.base import BlockingModel, Tensors

DEFAULTS = {"scale_factor": 1.1, "min_neighbors": 5, "min_size": 24}
CASCADE = "haarcascade_frontalface_default.xml"


def detect(
    cascade: Any, g: np.ndarray, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 24
) -> list[dict[str, int]]:
    """Boxes of the faces in a uint8 grayscale image, largest first."""
    import cv2

    eq = cv2.equalizeHist(g)
    found = cascade.detectMultiScale(
        eq, scaleFactor=scale_factor, minNeighbors=min_neighbors, minSize=(min_size, min_size)
    )
    boxes = [{"x": int(x), "y": int(y), "w": int(w), "h": int(h)} for x, y, w, h in (found if len(found) else [])]
    return sorted(boxes, key=lambda b: -b["w"] * b["h"])


class FaceDetector(BlockingModel):
    def load(self) -> None:
        import cv2

        path = self.version_dir / str(self.config.parameters.get("cascade", CASCADE))
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise RuntimeError(f"cannot load the Haar cascade {path}")
        self.options = {k: self.config.parameters.get(k, v) for k, v in DEFAULTS.items()}

    def run(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        opts = dict(self.options)
        for key in DEFAULTS:
            if key in parameters:  # per-request tuning: {"parameters": {"min_neighbors": 3}}
                try:
                    opts[key] = type(DEFAULTS[key])(parameters[key])
                except (TypeError, ValueError):
                    raise InvalidInput(f"parameter {key!r} must be a number") from None
        if not (opts["scale_factor"] > 1.0 and opts["min_neighbors"] >= 0 and opts["min_size"] >= 1):
            raise InvalidInput("need scale_factor > 1, min_neighbors >= 0, min_size >= 1")
        faces, counts = [], []
        for data in encoded_images(inputs) or []:
            boxes = detect(
                self.cascade,
                gray(decode(data)),
                float(opts["scale_factor"]),
                int(opts["min_neighbors"]),
                int(opts["min_size"]),
            )
            faces.append(json.dumps(boxes))
            counts.append(len(boxes))
        return {"faces": bytes_tensor(faces), "count": np.asarray(counts, dtype=np.int32)}

    def unload(self) -> None:
        self.cascade = None  # type: ignore[assignment]
