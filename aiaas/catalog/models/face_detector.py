"""``face-detector``: OpenCV's frontal-face Haar cascade, measured on the real images bundled in scikit-image
(the LFW face/non-face crops, the astronaut photo, face-free scenes)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    import numpy as np


FACE_REQ = Requirement(pip=(PILLOW, OPENCV, ("skimage", "scikit-image==0.26.0")))

FACE_CONFIG: dict[str, Any] = {
    "backend": "python",
    "task": "face-detection",
    "description": "Frontal face detection (OpenCV Haar cascade): boxes and count",
    "max_batch_size": 8,
    "inputs": IMAGE_IN,
    "outputs": [
        {"name": "faces", "datatype": "BYTES", "shape": [-1]},
        {"name": "count", "datatype": "INT32", "shape": [-1]},
    ],
    "parameters": {
        "class": "aiaas.catalog.runtime.vision_faces:FaceDetector",
        "cascade": "haarcascade_frontalface_default.xml",
        "scale_factor": 1.1,
        "min_neighbors": 5,
        "min_size": 24,
    },
}

# real photographs without people bundled in scikit-image / scikit-learn: every detection there is false
FACE_FREE = (
    "coffee",
    "chelsea",
    "rocket",
    "coins",
    "horse",
    "page",
    "text",
    "brick",
    "grass",
    "gravel",
    "moon",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "logo",
    "clock",
    "cell",
    "colorwheel",
)


def _face_free_images() -> list[tuple[str, np.ndarray]]:
    """(name, uint8 grayscale) of the face-free real images: scikit-image's sample data (the cameraman is
    left out: he has a face, seen from the side) and scikit-learn's china/flower photographs."""
    import numpy as np
    from skimage import data
    from sklearn.datasets import load_sample_images

    def to_gray(im: np.ndarray) -> np.ndarray:
        if im.ndim == 3:
            im = im[:, :, :3].mean(axis=2)
        if im.dtype != np.uint8:
            im = np.clip(im * 255 if im.max() <= 1.0 else im, 0, 255)
        return im.astype(np.uint8)

    out = [(name, to_gray(getattr(data, name)())) for name in FACE_FREE if hasattr(data, name)]
    out += [(f"sklearn_{i}", to_gray(im)) for i, im in enumerate(load_sample_images().images)]
    return out


def lfw_crops() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's LFW subset: 100 face and 100 non-face 25x25 crops, each padded by 25% (edge pixels
    repeated) and scaled 4x so the face is larger than the cascade's 24-pixel window. (images, is_face)."""
    import cv2
    import numpy as np
    from skimage import data

    crops = data.lfw_subset()
    out = []
    for c in crops:
        g = np.clip(c * 255.0, 0, 255).astype(np.uint8)
        g = cv2.copyMakeBorder(g, 6, 6, 6, 6, cv2.BORDER_REPLICATE)
        out.append(cv2.resize(g, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC))
    return np.stack(out), np.arange(len(crops)) < 100


def face_example_jpeg() -> bytes:
    """A small JPEG of the astronaut's face (NASA photo of Eileen Collins, public domain) for the README."""
    from PIL import Image
    from skimage import data

    img = Image.fromarray(data.astronaut()[40:200, 145:305]).convert("L").resize((72, 72), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=60, optimize=True)
    return buf.getvalue()


@timed
def build_face_detector(ctx: BuildContext) -> BuildResult:
    import cv2
    import numpy as np
    from skimage import data

    from aiaas.catalog.runtime.vision_faces import CASCADE, detect

    ctx.progress(0.05, "copying the Haar cascade from opencv-python-headless")
    src = Path(cv2.data.haarcascades) / CASCADE  # type: ignore[attr-defined]
    cascade_path = ctx.workdir / CASCADE
    shutil.copy2(src, cascade_path)
    cascade = cv2.CascadeClassifier(str(cascade_path))
    opts = {k: FACE_CONFIG["parameters"][k] for k in ("scale_factor", "min_neighbors", "min_size")}
    ctx.progress(0.15, "LFW face / non-face crops (scikit-image)")
    crops, is_face = lfw_crops()
    if ctx.quick:
        keep = np.r_[0:30, 100:130]
        crops, is_face = crops[keep], is_face[keep]
    hit = np.array([len(detect(cascade, g, **opts)) > 0 for g in crops])
    ctx.progress(0.6, "astronaut photo and face-free scenes")
    astro = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    astro_faces = detect(cascade, astro, **opts)
    free = _face_free_images()
    false_boxes = {name: len(detect(cascade, g, **opts)) for name, g in free}
    metrics = {
        "lfw_face_recall": float(hit[is_face].mean()),
        "lfw_nonface_false_positive_rate": float(hit[~is_face].mean()),
        "lfw_crops": float(len(crops)),
        "astronaut_faces_found": float(len(astro_faces)),
        "scene_images": float(len(free)),
        "scene_images_with_false_faces": float(sum(v > 0 for v in false_boxes.values())),
        "scene_false_faces_per_image": float(np.mean(list(false_boxes.values()))),
        "size_mb": size_mb(cascade_path),
    }
    ctx.progress(0.85, "measuring latency")
    model = served_instance(FACE_CONFIG, ctx.workdir)
    buf = io.BytesIO()
    from PIL import Image

    Image.fromarray(data.astronaut()).save(buf, format="JPEG", quality=90)
    metrics.update(python_latency_ms(model, {"image": bytes_rows(buf.getvalue())}, runs=5 if ctx.quick else 20))
    card = {
        "source": f"OpenCV {cv2.__version__} haarcascade_frontalface_default.xml (Viola-Jones / Lienhart), shipped "
        "in pip opencv-python-headless",
        "license": "Intel License Agreement for Open Source Computer Vision Library (BSD-3-style, in the XML "
        "header); OpenCV: Apache-2.0",
        "notes": (
            "No face-detection benchmark (FDDB, WIDER FACE) is available offline, so these are small real checks, "
            "not benchmark numbers. lfw_*: scikit-image's bundled LFW subset (Labeled Faces in the Wild), 100 "
            "face and 100 non-face 25x25 crops, padded by 25% and scaled 4x for the cascade's 24-px window: share "
            "of crops with at least one detection. astronaut_faces_found: faces found in scikit-image's astronaut "
            "photo (one frontal face). scene_*: scikit-image and scikit-learn sample photos without people "
            f"({', '.join(false_boxes)}): every detection there is a false positive. Detector settings: "
            f"{opts}, histogram-equalized grayscale. Frontal upright faces only."
        ),
        "extra": {"scene_false_faces": false_boxes, "astronaut_boxes": astro_faces},
    }
    ctx.write({CASCADE: cascade_path}, FACE_CONFIG, card)
    ctx.progress(1.0, f"LFW recall {metrics['lfw_face_recall']:.2f}")
    return BuildResult(metrics)


FACE_EXAMPLE_JPEG = asset_bytes("face_example.jpg")  # assets/face_example.jpg

SPEC = CatalogSpec(
    name="face-detector",
    build_s=17,  # measured: a first start on 2 cores at top CPU priority (2026-12-03)
    scenario="vision",
    task="face-detection",
    summary="Faces in a photo -> boxes and count (OpenCV Haar cascade)",
    source="OpenCV haarcascade_frontalface_default via pip opencv-python-headless 4.x",
    license="Intel open-source CV licence (BSD-style); OpenCV Apache-2.0",
    build=build_face_detector,
    requires=FACE_REQ,
    floors=(Floor("lfw_face_recall", ">=", 0.9),),  # aiaas's sanity floor on the LFW crops
    example=b64_example(FACE_EXAMPLE_JPEG),
)
