"""Torch-level passes: magnitude pruning and knowledge distillation, and the in-process fine-tuning loop.

Both need training, which goes through a ``FineTune`` function (``PassContext.fine_tune``): an optimization job
uses ``aiaas.optimize.worker.recipe_fine_tune`` (the model's training recipe, inside the job the training
scheduler runs), and ``local_fine_tune`` is the simple in-process loop of the library, the tests and the bench. Pruning
keeps torch's masks (``torch.nn.utils.prune``) during fine-tuning, so pruned weights stay
zero while the others adapt, and makes them permanent afterwards.

Honest limits: zeros in dense tensors do not make onnxruntime faster -- pruning shrinks nothing until a sparse
kernel or a physical channel removal uses it (structured pruning here zeroes whole channels/neurons, which a
later surgery could remove). The report shows the sparsity and the measured latency side by side.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from aiaas.errors import InvalidInput
from aiaas.optimize.artifacts import Artifact, LossFn, Progress, TrainOptions, TrainSet
from aiaas.optimize.passes import PassContext

_PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def cross_entropy_loss(output: torch.Tensor, targets: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return nn.functional.cross_entropy(output, targets[0])


def local_fine_tune(model: nn.Module, data: TrainSet, loss: LossFn, options: TrainOptions, progress: Progress) -> None:
    """Adam over shuffled minibatches, in this process. Deterministic for a given seed."""
    gen = torch.Generator().manual_seed(options.seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=options.learning_rate)
    n = len(data)
    steps = math.ceil(n / options.batch_size)
    model.train()
    for epoch in range(options.epochs):
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for s in range(steps):
            idx = perm[s * options.batch_size : (s + 1) * options.batch_size]
            out = model(*(t[idx] for t in data.inputs))
            value = loss(out, tuple(t[idx] for t in data.targets))
            opt.zero_grad()
            value.backward()
            opt.step()
            total += float(value.detach())
        progress((epoch + 1) / options.epochs, f"epoch {epoch + 1}/{options.epochs}: loss {total / steps:.4f}")
    model.eval()


def count_parameters(net: nn.Module) -> dict[str, Any]:
    total = sum(p.numel() for p in net.parameters())
    zeros = sum(int((p == 0).sum()) for p in net.parameters())
    return {"parameters": total, "zeros": zeros, "sparsity": zeros / total if total else 0.0}


def _prunable(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, _PRUNABLE)]


def prune(artifact: Artifact, options: dict[str, Any], ctx: PassContext) -> Artifact:
    """Magnitude pruning: ``unstructured`` removes single weights (globally over all layers or per layer),
    ``structured`` removes whole output channels/neurons by their L``norm`` (never of the last layer, whose
    outputs are the model's outputs)."""
    if artifact.net is None:
        raise InvalidInput("prune needs the torch network")
    net = copy.deepcopy(artifact.net).eval()
    layers = _prunable(net)
    if not layers:
        raise InvalidInput("prune: the network has no Linear or Conv layer")
    amount = float(options["amount"])
    before = count_parameters(net)
    if options["method"] == "unstructured":
        if options["scope"] == "global":
            torch_prune.global_unstructured(
                [(m, "weight") for m in layers], pruning_method=torch_prune.L1Unstructured, amount=amount
            )
        else:
            for m in layers:
                torch_prune.l1_unstructured(m, "weight", amount=amount)
    else:
        targets = layers[:-1]
        if not targets:
            raise InvalidInput("structured pruning needs a layer before the output layer")
        for m in targets:
            torch_prune.ln_structured(m, "weight", amount=amount, n=int(options["norm"]), dim=0)
    details: dict[str, Any] = {
        "method": options["method"],
        "scope": options["scope"],
        "amount": amount,
        "layers": len(layers),
        "parameters_before": before["parameters"],
    }
    epochs = int(options["fine_tune_epochs"])
    if epochs > 0:
        src, tune = ctx.source, ctx.fine_tune
        if src is None or src.train is None or tune is None:
            raise InvalidInput(
                "prune with fine_tune_epochs > 0 needs training rows (source.train) and a fine-tune function"
            )
        tune(
            net,
            src.train,
            src.loss or cross_entropy_loss,
            TrainOptions(
                epochs=epochs,
                learning_rate=float(options["learning_rate"]),
                batch_size=int(options["batch_size"]),
            ),
            ctx.progress,
        )
        details["fine_tune"] = {"epochs": epochs, "learning_rate": float(options["learning_rate"])}
    for m in layers:
        if torch_prune.is_pruned(m):
            torch_prune.remove(m, "weight")
    details["weight_sparsity"] = _weights_sparsity(net)
    details.update({k: v for k, v in count_parameters(net).items() if k != "parameters"})
    if options["method"] == "structured":
        details["channels_zeroed"] = sum(int((_weight(m).flatten(1).abs().sum(1) == 0).sum()) for m in layers[:-1])
        details["note"] = "channels are zeroed, not removed: size and speed stay until a surgery removes them"
    return artifact.derive("torch", "prune", details, net=net)


def _weight(m: nn.Module) -> torch.Tensor:
    w = m.weight
    assert isinstance(w, torch.Tensor)
    return w


def _weights_sparsity(net: nn.Module) -> float:
    ws = [_weight(m) for m in _prunable(net)]
    total = sum(w.numel() for w in ws)
    return sum(int((w == 0).sum()) for w in ws) / total if total else 0.0


def distillation_loss(temperature: float, alpha: float) -> LossFn:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, labels); targets = (labels, teacher logits).

    The T^2 factor keeps the soft-label gradients on the scale of the hard-label ones (Hinton et al. 2015).
    """

    def loss(output: torch.Tensor, targets: tuple[torch.Tensor, ...]) -> torch.Tensor:
        labels, teacher = targets
        soft = nn.functional.kl_div(
            nn.functional.log_softmax(output / temperature, dim=-1),
            nn.functional.log_softmax(teacher / temperature, dim=-1),
            reduction="batchmean",
            log_target=True,
        )
        hard = nn.functional.cross_entropy(output, labels)
        return alpha * temperature**2 * soft + (1 - alpha) * hard

    return loss


def teacher_logits(net: nn.Module, inputs: tuple[torch.Tensor, ...], batch: int = 512) -> torch.Tensor:
    net.eval()
    n = int(inputs[0].shape[0])
    with torch.no_grad():
        return torch.cat([net(*(t[i : i + batch] for t in inputs)) for i in range(0, n, batch)])


def distill(artifact: Artifact, options: dict[str, Any], ctx: PassContext) -> Artifact:
    src, tune = ctx.source, ctx.fine_tune
    if artifact.net is None or src is None:
        raise InvalidInput("distill needs the torch network")
    if src.student is None or src.train is None or tune is None:
        raise InvalidInput(
            "distill needs a student builder (source.student), training rows (source.train) and a fine-tune function"
        )
    width, depth = float(options["width"]), float(options["depth"])
    student = src.student(width, depth)
    t_params = sum(p.numel() for p in artifact.net.parameters())
    s_params = sum(p.numel() for p in student.parameters())
    soft = teacher_logits(artifact.net, src.train.inputs)
    labels = src.train.targets[0]
    temperature, alpha = float(options["temperature"]), float(options["alpha"])
    tune(
        student,
        TrainSet(src.train.inputs, (labels, soft)),
        distillation_loss(temperature, alpha),
        TrainOptions(
            epochs=int(options["epochs"]),
            learning_rate=float(options["learning_rate"]),
            batch_size=int(options["batch_size"]),
        ),
        ctx.progress,
    )
    details = {
        "width": width,
        "depth": depth,
        "temperature": temperature,
        "alpha": alpha,
        "epochs": int(options["epochs"]),
        "teacher_parameters": t_params,
        "student_parameters": s_params,
        "parameter_ratio": s_params / t_params if t_params else None,
    }
    return artifact.derive("torch", "distill", details, net=student.eval())


# -- students from a recipe ----------------------------------------------------------------------------------
def scaled_hyperparameters(
    hp: dict[str, Any], width: float, depth: float, keys: tuple[str, ...] = ("channels", "hidden")
) -> dict[str, Any]:
    """Shrink the architecture fields of a recipe's hyperparameters: ints and list entries by ``width``, list
    lengths by ``depth`` (keeping at least one layer). Other fields (learning rate, labels) are unchanged."""
    out = dict(hp)
    for key in keys:
        value = hp.get(key)
        if isinstance(value, int):
            out[key] = max(1, round(value * width))
        elif isinstance(value, list) and value:
            keep = max(1, round(len(value) * depth))
            out[key] = [max(1, round(v * width)) for v in value[:keep]]
    return out


def recipe_student(recipe: str, hyperparameters: dict[str, Any], meta: dict[str, Any]) -> Any:
    """``student(width, depth)`` for a training recipe: the recipe's own network with shrunk hyperparameters."""
    from aiaas.training.recipes import get_recipe

    full = dict(get_recipe(recipe, hyperparameters).params.model_dump())  # defaults filled in, e.g. channels

    def build(width: float, depth: float) -> nn.Module:
        return get_recipe(recipe, scaled_hyperparameters(full, width, depth)).build_model(meta)

    return build
