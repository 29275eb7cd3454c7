"""Training, in four parts:

- `inputs`: what a step consumes: views (`transforms`, `rand_augment`, `mixup`), masks (`masking`), the collators
  that make batches of them, and the rows a run reads (`streaming`);
- `loop`: the `Trainer` and what runs beside it: callbacks, optimiser groups, checkpoints, preemption;
- `runs`: whole runs: the driver every run goes through (`runs.run`), pretraining, the tokenizer and fine-tuning,
  with their argument dataclasses;
- `recipes`: each method's recipe and the official values it follows.

The modules users imported before this grouping keep their paths: `maskvision.training.collators`, `.masking`,
`.transforms`, `.callbacks`, `.trainer` and `.labelled_data` are the modules above (the same objects).
"""
