"""The main method's two training stages, as `Stage`s for the shared loop.

Stage 1 (self-supervised, no labels): the encoders see the same augmented patch; a small MLP g
maps the FLAIR embedding to the QSM embedding (MSE, `regression`), or the two modalities'
embeddings are contrasted (NT-Xent, `contrastive` ablation). Stage 2: BCE + λ·SupCon on the
lesion embedding with a class-balanced sampler; early stopping on validation PR-AUC.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import nn

from prlkit.eval.metrics import pr_auc
from prlkit.models.frodo import CrossModalPredictor, FrodoNet
from prlkit.train.losses import CompositeLoss, cross_modal_regression_loss, nt_xent_loss
from prlkit.train.sampling import balanced_batches, shuffled_batches

# Inference batch: on a 2-core CPU (torch 2.13) batch 8 ran faster than 64, whose activations (~200 MB each)
# thrash memory.
EVAL_BATCH = 8


def takes_features(net: nn.Module) -> bool:
    """Whether `net(x, features)` also takes lesion features (QSMRim-Net, APRL); else `net(x)`."""
    return bool(getattr(net, "takes_features", False))


def predict_logits(
    net: nn.Module, x: torch.Tensor, batch_size: int = EVAL_BATCH, features: torch.Tensor | None = None
) -> torch.Tensor:
    """Logits of a module over `x` in batches (caller sets eval mode and no_grad); `features` (N, F)
    are passed on to modules that take them and ignored by the others."""
    device = next(itertools.chain(net.parameters(), net.buffers())).device  # APRL holds buffers only
    if not takes_features(net):
        outputs = [net(chunk.to(device, torch.float32)).float() for chunk in x.split(batch_size)]
    elif features is None:
        raise ValueError(f"{type(net).__name__} needs lesion features next to the patches")
    else:
        chunks = zip(x.split(batch_size), torch.as_tensor(features).split(batch_size))
        outputs = [net(chunk.to(device, torch.float32), rows.to(device)).float() for chunk, rows in chunks]
    return torch.cat(outputs) if outputs else torch.zeros(0, device=device)


def predict_probabilities(
    net: nn.Module, x: torch.Tensor, device: torch.device, features: torch.Tensor | None = None
) -> np.ndarray:
    """Uncalibrated sigmoid probabilities (float64) of `net` over patches `x` (and lesion features), in eval mode."""
    net.to(device).eval()
    with torch.no_grad():
        return torch.sigmoid(predict_logits(net, x, features=features).double()).cpu().numpy()


def validation_pr_auc(net: nn.Module, x: torch.Tensor, y: torch.Tensor, features: torch.Tensor | None = None) -> float:
    """PR-AUC (average precision) of `net` on validation patches: the fine-tuning early-stopping score."""
    return pr_auc(y.cpu().numpy(), torch.sigmoid(predict_logits(net, x, features=features)).cpu().numpy())


class CrossModalPretraining:
    """Stage 1: learn both encoders without labels (the method's cross-modal regression, or NT-Xent)."""

    monitor = "min"
    score_name = "val_loss"

    def __init__(self, net: FrodoNet, n_train: int, batch_size: int, kind: str, stop_gradient: bool,
                 temperature: float, seed: int):
        self.net = net
        self.predictor = CrossModalPredictor(net.encoder_dim, seed=seed)
        self.module = nn.ModuleDict({"net": net, "predictor": self.predictor})
        self.n_train, self.batch_size = n_train, batch_size
        self.kind, self.stop_gradient, self.temperature = kind, stop_gradient, temperature

    def batches(self, generator: torch.Generator) -> list[torch.Tensor]:
        return shuffled_batches(self.n_train, self.batch_size, generator)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z_q, z_f = self.net.encode_modalities(x)
        if self.kind == "contrastive":
            return nt_xent_loss(z_q, self.predictor(z_f), self.temperature)
        return cross_modal_regression_loss(self.predictor(z_f), z_q, self.stop_gradient)

    def score(self, x: torch.Tensor, y: torch.Tensor) -> float:
        device = next(self.net.parameters()).device
        losses = [float(self.loss(chunk.to(device), None)) * len(chunk) for chunk in x.split(EVAL_BATCH * 4)]
        return sum(losses) / max(len(x), 1)


class SupervisedFinetuning:
    """Stage 2: BCE + λ·SupCon (λ = softplus(a), learned) with class-balanced batches."""

    monitor = "max"
    score_name = "val_pr_auc"

    def __init__(self, net: FrodoNet, train_labels: np.ndarray, batch_size: int, temperature: float,
                 sample_weights: torch.Tensor | None = None):
        self.net = net
        self.criterion = CompositeLoss(temperature=temperature)
        self.module = nn.ModuleDict({"net": net, "criterion": self.criterion})
        self.train_labels, self.batch_size = np.asarray(train_labels), batch_size
        self.sample_weights = sample_weights  # None: class-balanced

    def batches(self, generator: torch.Generator) -> list[torch.Tensor]:
        return balanced_batches(self.train_labels, self.batch_size, generator, self.sample_weights)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        output = self.net.forward_features(x)
        return self.criterion(output.logit.float(), output.embedding.float(), y).total

    def score(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return validation_pr_auc(self.net, x, y)
