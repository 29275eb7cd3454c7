"""`MaskVisionTrainer`: the transformers `Trainer` with what pretraining and fine-tuning vision encoders need.

- No weight decay on norms, biases and the parameters a model lists in ``no_weight_decay()`` (position, [CLS]
  and [MASK] embeddings, ...).
- Optional layer-wise learning-rate decay (``layer_decay``), as BEiT fine-tuning does.
- Every scalar field of the model's output besides ``loss`` (token accuracy, perplexity, ...) is averaged
  over the logging interval and all processes and logged with the loss, together with the images per second
  and the values of callbacks that define ``log_values()`` (momentum, temperature, ...).
- Resuming loads the checkpoint the way ``from_pretrained`` does, with transformers' key renaming: the stock
  `Trainer` loads it with a raw ``load_state_dict`` and silently misses every weight saved under a legacy name
  (Swin's ``attention.self.query``, ...; transformers #43701, #48805).
"""

import time

import torch
from transformers import PreTrainedModel, Trainer

from .callbacks import _unwrap
from .optim import param_groups


class MaskVisionTrainer(Trainer):
    def __init__(self, *args, layer_decay: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if hasattr(self.args, "resolve_learning_rate"):  # PretrainingArguments: linear scaling rule
            self.args.resolve_learning_rate()
        self.layer_decay = layer_decay
        self._metric_sums: dict[str, torch.Tensor] = {}
        self._metric_steps = 0
        self._images = 0
        self._interval_start = time.perf_counter()

    # ----------------------------------------------------------------------------------------------- optimizer
    def get_decay_parameter_names(self, model) -> list[str]:
        names = super().get_decay_parameter_names(model)
        unwrapped = _unwrap(model)
        excluded = unwrapped.no_weight_decay() if hasattr(unwrapped, "no_weight_decay") else set()
        return [name for name in names if name not in excluded]

    def create_optimizer(self, model=None):
        if self.layer_decay is None or self.optimizer is not None:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        config = _unwrap(opt_model).config
        swin_depths = getattr(config, "depths", None)
        num_layers = sum(swin_depths) if swin_depths is not None else config.num_hidden_layers
        groups = param_groups(
            opt_model,
            learning_rate=self.args.learning_rate,
            weight_decay=self.args.weight_decay,
            decay_parameter_names=self.get_decay_parameter_names(opt_model),
            layer_decay=self.layer_decay,
            num_layers=num_layers,
            swin_depths=swin_depths,
        )
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        optimizer_kwargs.pop("lr", None)  # each group carries its own
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    # -------------------------------------------------------------------------------------------------- resume
    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        unwrapped = _unwrap(self.model if model is None else model)
        if not isinstance(unwrapped, PreTrainedModel) or self.is_fsdp_enabled or self.is_deepspeed_enabled:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        loaded, info = type(unwrapped).from_pretrained(
            resume_from_checkpoint, config=unwrapped.config, output_loading_info=True
        )
        if info["missing_keys"] or info["mismatched_keys"]:
            raise ValueError(
                f"Checkpoint {resume_from_checkpoint!r} does not match the model: missing "
                f"{sorted(info['missing_keys'])}, mismatched {sorted(key for key, *_ in info['mismatched_keys'])}."
            )
        unwrapped.load_state_dict(loaded.state_dict())

    # ------------------------------------------------------------------------------------------------- logging
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if model.training:
            self._record(outputs, inputs)
        return (loss, outputs) if return_outputs else loss

    def _record(self, outputs, inputs) -> None:
        if isinstance(outputs, dict):
            for key, value in outputs.items():
                if key != "loss" and torch.is_tensor(value) and value.numel() == 1:
                    value = value.detach().float().reshape(())
                    self._metric_sums[key] = self._metric_sums.get(key, 0.0) + value
        self._metric_steps += 1
        pixels = inputs.get(_unwrap(self.model).main_input_name)
        if torch.is_tensor(pixels):
            self._images += pixels.shape[0]

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._metric_steps:
            logs.update(self._interval_metrics())
            for callback in self.callback_handler.callbacks:
                if hasattr(callback, "log_values"):
                    logs.update(callback.log_values())
        super().log(logs, start_time)

    def _interval_metrics(self) -> dict[str, float]:
        # One all-reduce of [metric sums..., steps, images]: every process logs the same global values.
        keys = sorted(self._metric_sums)
        device = self.args.device
        values = [torch.as_tensor(self._metric_sums[key], device=device, dtype=torch.float32) for key in keys]
        counts = torch.tensor([self._metric_steps, self._images], device=device, dtype=torch.float32)
        packed = torch.cat([torch.stack(values) if values else counts.new_zeros(0), counts])
        packed = self.accelerator.reduce(packed, reduction="sum")
        steps, images = packed[-2].item(), packed[-1].item()
        elapsed = time.perf_counter() - self._interval_start
        metrics = {key: round(packed[index].item() / steps, 6) for index, key in enumerate(keys)}
        metrics["images_per_second"] = round(images / max(elapsed, 1e-9), 2)
        self._metric_sums, self._metric_steps, self._images = {}, 0, 0
        self._interval_start = time.perf_counter()
        return metrics
