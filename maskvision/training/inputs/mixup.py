"""Mixup and CutMix on a batch, with soft targets (the regularisers of DeiT's and BEiT's fine-tuning recipes).

- Mixup (Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018): ``x = λ·x_i + (1 − λ)·x_j``.
- CutMix (Yun et al., "CutMix: Regularization Strategy to Train Strong Classifiers with Localizable Features",
  ICCV 2019): a box of area ``(1 − λ)·H·W`` of ``x_j`` is pasted into ``x_i``; λ is then the kept area exactly.

As timm's batch mode does for DeiT / BEiT: with probability ``prob`` the batch is mixed with itself reversed,
using CutMix with probability ``switch_prob`` when both are enabled; λ ~ Beta(α, α) once per batch. Targets are
label-smoothed one-hot vectors mixed with the same λ, so each row sums to 1.
"""

import math

import torch


def smooth_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """(B,) class ids → (B, num_classes) targets: ``1 − smoothing + smoothing / C`` on the class, ``smoothing / C``
    elsewhere."""
    off = smoothing / num_classes
    targets = torch.full((labels.shape[0], num_classes), off, dtype=torch.float32, device=labels.device)
    return targets.scatter_(1, labels.long().unsqueeze(1), 1.0 - smoothing + off)


class MixupCutmix:
    """Callable on ``(pixel_values (B, C, H, W), labels (B,))`` → ``(mixed pixel_values, soft targets (B, K))``."""

    def __init__(
        self,
        num_classes: int,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        label_smoothing: float = 0.1,
    ):
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}.")
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError(
                f"mixup_alpha ({mixup_alpha}) and cutmix_alpha ({cutmix_alpha}) must be >= 0 (0 disables)."
            )
        if mixup_alpha == 0 and cutmix_alpha == 0:
            raise ValueError("MixupCutmix needs mixup_alpha > 0 or cutmix_alpha > 0.")
        for name, value in (("prob", prob), ("switch_prob", switch_prob), ("label_smoothing", label_smoothing)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}.")
        self.num_classes = num_classes
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha
        self.prob = prob
        self.switch_prob = switch_prob
        self.label_smoothing = label_smoothing

    def _sample(self, generator: torch.Generator | None) -> tuple[float, bool]:
        """(λ, use CutMix) for one batch; λ = 1 means no mixing."""
        if torch.rand((), generator=generator).item() >= self.prob:
            return 1.0, False
        use_cutmix = self.cutmix_alpha > 0 and (
            self.mixup_alpha == 0 or torch.rand((), generator=generator).item() < self.switch_prob
        )
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        # Beta(α, α) from two Gamma(α) draws (torch.distributions has no generator argument).
        gammas = torch._standard_gamma(torch.full((2,), float(alpha)), generator=generator)
        return (gammas[0] / gammas.sum()).item(), use_cutmix

    @staticmethod
    def _cutmix_box(lam: float, height: int, width: int, generator) -> tuple[int, int, int, int]:
        ratio = math.sqrt(1.0 - lam)
        cut_h, cut_w = int(height * ratio), int(width * ratio)
        center_y = int(torch.randint(height, (), generator=generator))
        center_x = int(torch.randint(width, (), generator=generator))
        top, bottom = max(center_y - cut_h // 2, 0), min(center_y + cut_h // 2, height)
        left, right = max(center_x - cut_w // 2, 0), min(center_x + cut_w // 2, width)
        return top, bottom, left, right

    def __call__(self, pixel_values: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None):
        if pixel_values.ndim != 4 or labels.shape != (pixel_values.shape[0],):
            raise ValueError(
                f"Need pixel_values (B, C, H, W) and labels (B,); got {tuple(pixel_values.shape)} and "
                f"{tuple(labels.shape)}."
            )
        targets = smooth_one_hot(labels, self.num_classes, self.label_smoothing)
        lam, use_cutmix = self._sample(generator)
        if lam == 1.0:
            return pixel_values, targets
        partner = pixel_values.flip(0)
        if use_cutmix:
            height, width = pixel_values.shape[-2:]
            top, bottom, left, right = self._cutmix_box(lam, height, width, generator)
            pixel_values = pixel_values.clone()
            pixel_values[:, :, top:bottom, left:right] = partner[:, :, top:bottom, left:right]
            lam = 1.0 - (bottom - top) * (right - left) / (height * width)
        else:
            pixel_values = pixel_values * lam + partner * (1.0 - lam)
        return pixel_values, targets * lam + targets.flip(0) * (1.0 - lam)
