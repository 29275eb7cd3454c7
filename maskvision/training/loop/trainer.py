"""`MaskVisionTrainer`: the transformers `Trainer` with what pretraining and fine-tuning vision encoders need.

- No weight decay on 1-D parameters (norms, biases, layer-scale gammas) nor on the parameters a model names in
  ``no_weight_decay()`` (each method's official list); for stock transformers models (fine-tuning), on position and
  [CLS] embeddings, as BEiT's fine-tuning (whose relative position bias tables are decayed).
- Checkpoints (resume, best model) are reloaded through ``from_pretrained`` and then strictly: transformers 5
  saves some models under their original key names (Beit: ``beit.encoder.layer.N.`` for ``beit.layers.N.``), which
  Trainer's raw non-strict ``load_state_dict`` would silently skip (transformers #43701, #48805).
- A checkpoint is marked complete (`checkpoints.mark_complete`) once every process has written it, and older ones
  are rotated out only then: resuming never picks one that a crash or a full disk left half-written.
- Collators with ``set_epoch`` (maskvision's) get the epoch before each one: batches are a function of (seed, epoch,
  samples), which a resumed run replays.
- A streamed training set (`maskvision.data.ImageStream`, ``--streaming true``) is loaded by its own data loader (it
  is already this rank's part: accelerate would split it again); the streams' positions after the batches trained on
  go into every checkpoint (`training.streaming`), and a resumed run continues the streams from there instead of
  replaying the epoch's batches.
- Preemption (`training.preemption`): on SIGTERM or SIGUSR1 (``preemption_signals``) the run finishes its optimizer
  step, saves a complete checkpoint and stops; ``trainer.preempted`` then tells the caller not to finish the run.
- The training arguments are saved beside the weights as ``training_args.json``, not as Trainer's pickled
  ``training_args.bin``: nothing in a checkpoint needs unpickling arbitrary objects.
- Optional layer-wise learning-rate decay (``layer_decay``), as BEiT fine-tuning does.
- The cosine schedule warms up from and ends at the bounds of `PretrainingArguments.schedule_bounds` (BEiT's
  ``min_lr``, MoBY's ``WARMUP_LR`` and ``MIN_LR``) instead of 0 when they are set.
- A non-finite (NaN/inf) loss stops the run with an error naming the optimizer step (``nan_policy="stop"``, the
  default), or skips that step (``nan_policy="skip"``): no optimizer update, no teacher or codebook update (callbacks
  check `callbacks.step_skipped`), a warning and a ``skipped_steps`` count in the logs. All processes agree.
- A collator with ``augment_on_device`` (`maskvision.training.inputs.collators`) hands over uint8 crops; its batched
  augmentation runs on the batch once it is on the device.
- Every scalar field of the model's output besides ``loss`` (token accuracy, perplexity, ...) is averaged
  over the logging interval and all processes and logged with the loss, together with the images per second
  and the values of callbacks that define ``log_values()`` (momentum, temperature, ...).
"""

import logging
import os
import shutil
import time

import torch
from transformers import PreTrainedModel, SchedulerType, Trainer
from transformers.trainer import TRAINING_ARGS_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from ...data.streaming import STREAM_POSITION, ImageStream
from ...modeling.modeling_utils import check_checkpoint_model_type
from ...run_files import TRAINING_ARGS
from ..inputs.streaming import load_stream_state, save_stream_state
from ..runs.arguments import NAN_POLICIES
from .callbacks import CollatorEpochCallback, unwrap_model
from .checkpoints import incomplete_reason, mark_complete
from .optim import cosine_schedule_with_bounds, decay_parameter_names, param_groups
from .preemption import PREEMPTION_SIGNALS, PreemptionCallback

logger = logging.getLogger(__name__)


class MaskVisionTrainer(Trainer):
    def __init__(self, *args, layer_decay: float | None = None, nan_policy: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if hasattr(self.args, "resolve_learning_rate"):  # PretrainingArguments: linear scaling rule
            self.args.resolve_learning_rate()
        self.layer_decay = layer_decay
        self.nan_policy = nan_policy if nan_policy is not None else getattr(self.args, "nan_policy", "stop")
        if self.nan_policy not in NAN_POLICIES:
            raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {self.nan_policy!r}.")
        self.skipped_steps = 0
        self._skip_pending = False  # a micro-step of the current optimizer step had a non-finite loss
        if hasattr(self.data_collator, "set_epoch"):
            if self.args.dataloader_persistent_workers and self.args.dataloader_num_workers > 0:
                logger.warning(
                    "dataloader_persistent_workers keeps the first epoch's collator in the workers: every epoch then "
                    "draws the same views and masks, and a resumed run different ones. Leave it off."
                )
            self.add_callback(CollatorEpochCallback(self.data_collator))
        if isinstance(self.train_dataset, ImageStream):
            # The streams continue from their saved positions (`train`); Trainer's replay of the epoch's first
            # batches would skip past them.
            self.args.ignore_data_skip = True
        self.preemption = PreemptionCallback(
            getattr(self.args, "preemption_signals", PREEMPTION_SIGNALS),
            reduce=lambda flag: self.accelerator.reduce(flag, reduction="sum"),
        )
        self.add_callback(self.preemption)
        self._metric_sums: dict[str, torch.Tensor] = {}
        self._metric_steps = 0
        self._images = 0
        self._interval_start = time.perf_counter()

    # ------------------------------------------------------------------------------------------------ training
    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        if isinstance(resume_from_checkpoint, str) and isinstance(self.train_dataset, ImageStream):
            load_stream_state(self.train_dataset, resume_from_checkpoint, self.args.process_index)
        self.preemption.install()
        try:
            return super().train(resume_from_checkpoint, *args, **kwargs)
        finally:
            self.preemption.uninstall()

    @property
    def preempted(self) -> bool:
        """True when the last `train` stopped on a preemption signal (its checkpoint is complete; the run is not)."""
        return self.preemption.stopped_at is not None

    def get_train_dataloader(self):
        if not isinstance(self.train_dataset, ImageStream):
            return super().get_train_dataloader()
        args = self.args
        return self.train_dataset.data_loader(
            self.data_collator,
            batch_size=self._train_batch_size,
            num_workers=args.dataloader_num_workers,
            pin_memory=args.dataloader_pin_memory,
            prefetch_factor=args.dataloader_prefetch_factor,
            persistent_workers=args.dataloader_persistent_workers,
            multiprocessing_context=args.dataloader_multiprocessing_context,
        )

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batches, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
        if isinstance(self.train_dataset, ImageStream):  # these batches are trained on: their streams move on
            for batch in batches:
                self.train_dataset.consume(batch.pop(STREAM_POSITION, None))
        return batches, num_items

    # ----------------------------------------------------------------------------------------------- optimizer
    def get_decay_parameter_names(self, model) -> list[str]:
        return decay_parameter_names(model, unwrap_model(model))

    def create_optimizer(self, model=None):
        if self.layer_decay is None or self.optimizer is not None:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        config = unwrap_model(opt_model).config
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

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        bounds = getattr(self.args, "schedule_bounds", None)
        start, floor = bounds() if bounds is not None else (0.0, 0.0)
        if self.lr_scheduler is None and self.args.lr_scheduler_type == SchedulerType.COSINE and (start or floor):
            peak = self.args.learning_rate
            self.lr_scheduler = cosine_schedule_with_bounds(
                self.optimizer if optimizer is None else optimizer,
                self.args.get_warmup_steps(num_training_steps),
                num_training_steps,
                start_ratio=start / peak,
                floor_ratio=floor / peak,
            )
            self._created_lr_scheduler = True
        return super().create_scheduler(num_training_steps, optimizer)

    # ----------------------------------------------------------------------------------------------- checkpoints
    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        super()._save(output_dir, state_dict)
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if self.args.should_save:
            pickled = os.path.join(output_dir, TRAINING_ARGS_NAME)
            if os.path.exists(pickled):
                os.remove(pickled)
            with open(os.path.join(output_dir, TRAINING_ARGS), "w", encoding="utf-8") as handle:
                handle.write(self.args.to_json_string())

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = self._get_output_dir(trial=trial)
        checkpoint = os.path.join(run_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        if self.args.should_save and os.path.isdir(checkpoint) and incomplete_reason(checkpoint) is not None:
            shutil.rmtree(checkpoint)  # a leftover of a killed run: no stale file may mix into the new one
        self.accelerator.wait_for_everyone()
        # Older checkpoints are rotated out only once this one is complete.
        limit, self.args.save_total_limit = self.args.save_total_limit, None
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
        if isinstance(self.train_dataset, ImageStream):
            save_stream_state(self.train_dataset, checkpoint, self.args.process_index)
        self.accelerator.wait_for_everyone()  # every process's files (RNG states, shards, streams) are written
        if self.args.should_save:
            mark_complete(checkpoint, self.state.global_step)
            rotate_checkpoints(
                output_dir=run_dir,
                save_total_limit=limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=True,
            )

    def _load_best_model(self) -> None:
        if not self._loads_through_from_pretrained(self.model):
            return super()._load_best_model()
        self._load_checkpoint_weights(self.state.best_model_checkpoint)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None) -> None:
        if not self._loads_through_from_pretrained(self.model if model is None else model):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        self._load_checkpoint_weights(resume_from_checkpoint, model)

    def _loads_through_from_pretrained(self, model) -> bool:
        # Sharded (FSDP, DeepSpeed) checkpoints and plain modules: Trainer's own loader.
        sharded = self.is_fsdp_enabled or self.is_deepspeed_enabled
        return isinstance(unwrap_model(model), PreTrainedModel) and not sharded

    def _load_checkpoint_weights(self, checkpoint: str, model=None) -> None:
        target = unwrap_model(model if model is not None else self.model)
        check_checkpoint_model_type(checkpoint, type(target.config))  # another method's checkpoint: a clear error
        loaded, info = type(target).from_pretrained(checkpoint, config=target.config, output_loading_info=True)
        if info["missing_keys"] or info["mismatched_keys"]:
            raise ValueError(
                f"Checkpoint {checkpoint!r} does not match the model: missing {sorted(info['missing_keys'])}, "
                f"mismatched {sorted(key for key, *_ in info['mismatched_keys'])}."
            )
        target.load_state_dict(loaded.state_dict())  # strict: every weight restored

    # ---------------------------------------------------------------------------------------------------- inputs
    def _prepare_inputs(self, inputs):
        # A collator with `augment_on_device` sends uint8 crops: its batched augmentation runs here, on the device.
        inputs = super()._prepare_inputs(inputs)
        if getattr(self.data_collator, "augment_on_device", False):
            inputs = self.data_collator.augment(inputs)
        return inputs

    # ------------------------------------------------------------------------------------------------ numerics
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if model.training:
            if self._loss_is_finite(loss):
                self._record(outputs, inputs)
            else:
                self._non_finite_loss(loss)
        return (loss, outputs) if return_outputs else loss

    def _loss_is_finite(self, loss: torch.Tensor) -> bool:
        # One flag reduced over processes: every process stops, or skips the same step.
        bad = (~torch.isfinite(loss.detach())).any().float()
        if self.args.world_size > 1:
            bad = self.accelerator.reduce(bad, reduction="sum")
        return bad.item() == 0

    def _non_finite_loss(self, loss: torch.Tensor) -> None:
        step = self.state.global_step + 1
        where = f"optimizer step {step} of {self.state.max_steps} (epoch {self.state.epoch or 0:.2f})"
        value = loss.detach().float().item() if loss.numel() == 1 else "non-finite"
        if self.nan_policy == "stop":
            raise FloatingPointError(
                f"Non-finite loss ({value}) at {where} on at least one process: stopping. Lower the learning rate, "
                f"keep gradient clipping on (--max_grad_norm, now {self.args.max_grad_norm}), prefer bf16 to fp16, "
                "resume from the last checkpoint (--resume_from_checkpoint last), or pass --nan_policy skip to skip "
                "such steps."
            )
        if not self._skip_pending:
            logger.warning(
                "Non-finite loss (%s) at %s: skipping the step (no optimizer or teacher update).", value, where
            )
        self._skip_pending = True

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.accelerator.sync_gradients:  # the last micro-step: the optimizer steps next
            skip, self._skip_pending = self._skip_pending, False
            self.state.step_skipped = skip  # read by the callbacks through `step_skipped(state)`
            if skip:
                if self.accelerator.scaler is not None:  # fp16: the grad scaler skips a step with non-finite grads
                    for parameter in model.parameters():
                        if parameter.grad is not None:
                            parameter.grad.fill_(float("nan"))
                else:  # parameters without gradients: optimizer.step() leaves them and their state untouched
                    model.zero_grad(set_to_none=True)
                self.skipped_steps += 1
        return loss

    # ------------------------------------------------------------------------------------------------- logging
    def _record(self, outputs, inputs) -> None:
        if isinstance(outputs, dict):
            for key, value in outputs.items():
                if key != "loss" and torch.is_tensor(value) and value.numel() == 1:
                    value = value.detach().float().reshape(())
                    self._metric_sums[key] = self._metric_sums.get(key, 0.0) + value
        self._metric_steps += 1
        pixels = inputs.get(unwrap_model(self.model).main_input_name)
        if torch.is_tensor(pixels):
            self._images += pixels.shape[0]

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self.skipped_steps:
            logs["skipped_steps"] = self.skipped_steps
        if "loss" in logs and isinstance(self.train_dataset, ImageStream):  # bad images met by all the streams
            skipped = torch.tensor(float(self.train_dataset.skipped_images()), device=self.args.device)
            logs["skipped_images"] = int(self.accelerator.reduce(skipped, reduction="sum").item())
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
