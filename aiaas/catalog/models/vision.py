"""Alias: ``aiaas.catalog.models.vision`` before the catalog had one module per model (vision_common,
fashion_cnn, fashion_vae, ocr, face_detector). Kept so that code importing the old path keeps working; new
code imports the model modules."""

from __future__ import annotations

from aiaas.catalog.models import face_detector, fashion_cnn, fashion_vae, ocr
from aiaas.catalog.models.face_detector import (
    FACE_CONFIG,
    FACE_FREE,
    FACE_REQ,
    build_face_detector,
    face_example_jpeg,
    lfw_crops,
)
from aiaas.catalog.models.fashion_cnn import CNN_CONFIG, build_fashion_cnn
from aiaas.catalog.models.fashion_vae import (
    BETA,
    COMPONENTS,
    GEN_CONFIG,
    LATENT,
    SHARPEN,
    TEMPERATURE,
    VAE_REQ,
    build_fashion_vae,
    class_mixtures,
)
from aiaas.catalog.models.ocr import (
    DEJAVU,
    OCR_CONFIG,
    OCR_FONTS,
    OCR_REQ,
    OCR_WORDS,
    build_ocr,
    edit_distance,
    ocr_samples,
    ocr_scores,
)
from aiaas.catalog.models.vision_common import (
    FASHION_DIR,
    FASHION_LICENSE,
    FASHION_REQ,
    IMAGE_IN,
    OPENCV,
    PILLOW,
    TORCH_THREADS,
    load_fashion,
)

SPECS = [fashion_cnn.SPEC, fashion_vae.SPEC, ocr.SPEC, face_detector.SPEC]

__all__ = [
    "BETA",
    "CNN_CONFIG",
    "COMPONENTS",
    "DEJAVU",
    "FACE_CONFIG",
    "FACE_FREE",
    "FACE_REQ",
    "FASHION_DIR",
    "FASHION_LICENSE",
    "FASHION_REQ",
    "GEN_CONFIG",
    "IMAGE_IN",
    "LATENT",
    "OCR_CONFIG",
    "OCR_FONTS",
    "OCR_REQ",
    "OCR_WORDS",
    "OPENCV",
    "PILLOW",
    "SHARPEN",
    "SPECS",
    "TEMPERATURE",
    "TORCH_THREADS",
    "VAE_REQ",
    "build_face_detector",
    "build_fashion_cnn",
    "build_fashion_vae",
    "build_ocr",
    "class_mixtures",
    "edit_distance",
    "face_example_jpeg",
    "lfw_crops",
    "load_fashion",
    "ocr_samples",
    "ocr_scores",
]
