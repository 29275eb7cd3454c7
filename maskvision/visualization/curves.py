"""A run's logged scalars as one picture: a panel per scalar against the optimizer step.

Whatever the run logged is drawn, read from the Trainer's log history (``trainer_state.json``): the loss, the
learning rate, the gradient norm and each method's health figures (codebook perplexity and used codes of a
tokenizer, BEiT's token accuracy, MoBY's contrastive accuracy, ExtreMA's and MoBY's teacher momentum, ...), and the
evaluations of a fine-tuning run. Every run flow (pretraining, tokenizer, fine-tuning) calls `write_training_curves`
once at its end; ``maskvision visualize curves DIR`` redraws it from ``DIR/trainer_state.json``; ``maskvision card``
embeds it in the model card, and ``maskvision push`` uploads it beside the card.

matplotlib is the optional ``plots`` extra (``pip install 'maskvision[plots]'``), imported only here, inside the
functions that draw: ``import maskvision`` never loads it. It draws on a bare `Figure` (no pyplot), so a user's
own backend is left alone.
"""

import json
import logging
import math
import os

from ..run_files import TRAINER_STATE, TRAINING_CURVES

logger = logging.getLogger(__name__)

CURVES_FILE = TRAINING_CURVES  # in a run's output_dir, and beside the card of a pushed repo
STATE_FILE = TRAINER_STATE
MISSING_PLOTS = "Drawing training curves needs matplotlib: pip install 'maskvision[plots]'."
# The Trainer's bookkeeping in the log history: counters, timings and the run's mean loss, not training signals.
_BOOKKEEPING = {"epoch", "step", "total_flos", "train_loss", "num_input_tokens_seen"}
_BOOKKEEPING_SUFFIXES = ("_runtime", "_samples_per_second", "_steps_per_second")
_FIRST = ("loss", "learning_rate", "grad_norm")  # panels in this order, then the others as first logged
PANEL_INCHES, DPI, PANELS_PER_ROW = (3.0, 2.1), 80, 4


class PlotsExtraMissing(ImportError):
    """matplotlib is not installed; the message says how to install it."""


def scalar_series(log_history: list[dict]) -> dict[str, tuple[list[int], list[float]]]:
    """Each logged scalar → (steps, values), non-finite values left out; the loss, learning rate and gradient norm
    first, evaluation figures last."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for entry in log_history:
        step = entry.get("step")
        for key, value in entry.items():
            if step is None or key in _BOOKKEEPING or key.endswith(_BOOKKEEPING_SUFFIXES):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            steps, values = series.setdefault(key, ([], []))
            steps.append(int(step))
            values.append(float(value))

    def order(key: str) -> tuple[int, int]:
        rank = _FIRST.index(key) if key in _FIRST else len(_FIRST) + key.startswith("eval_")
        return rank, list(series).index(key)

    return {key: series[key] for key in sorted(series, key=order)}


def _figure(panels: int):
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise PlotsExtraMissing(MISSING_PLOTS) from error
    columns = min(PANELS_PER_ROW, panels)
    rows = math.ceil(panels / columns)
    figure = Figure(figsize=(PANEL_INCHES[0] * columns, PANEL_INCHES[1] * rows), dpi=DPI, layout="constrained")
    return figure, figure.subplots(rows, columns, squeeze=False).ravel()


def plot_training_curves(log_history: list[dict], path: str, title: str | None = None) -> list[str]:
    """Draw every scalar of ``log_history`` in its own panel (`PANELS_PER_ROW` a row) into the PNG ``path``;
    returns the scalars drawn, in panel order. Raises `PlotsExtraMissing` without matplotlib."""
    series = scalar_series(log_history)
    if not series:
        raise ValueError("The log history holds no scalar to draw: did the run log anything (--logging_steps)?")
    figure, axes = _figure(len(series))
    for axis, (name, (steps, values)) in zip(axes, series.items()):
        axis.plot(steps, values, linewidth=1.2, marker="o" if len(steps) <= 12 else None, markersize=3)
        axis.set_title(name, fontsize=9)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
        axis.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4))
        axis.xaxis.get_major_locator().set_params(integer=True)  # optimizer steps
    for axis in axes[len(series) :]:
        axis.set_axis_off()
    for axis in axes[max(0, len(series) - PANELS_PER_ROW) : len(series)]:  # the lowest panel of each column
        axis.set_xlabel("step", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path)
    return list(series)


def read_log_history(directory: str) -> list[dict]:
    """The log history of a run directory's ``trainer_state.json`` (or of that file itself)."""
    path = directory if directory.endswith(".json") else os.path.join(directory, STATE_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No {STATE_FILE} at {path!r}: give the output_dir of a finished run, or one of its checkpoint-N folders."
        )
    with open(path, encoding="utf-8") as handle:
        return json.load(handle).get("log_history", [])


def write_training_curves(trainer) -> str | None:
    """The end-of-run hook of every run flow: ``output_dir/training_curves.png`` from the trainer's log history (what
    ``trainer_state.json`` holds), on the main process. Returns its path; None, with a one-line warning, when
    matplotlib is missing or nothing was logged, so that a finished run never fails for want of a picture."""
    if not trainer.is_world_process_zero():
        return None
    output_dir = trainer.args.output_dir
    if not scalar_series(trainer.state.log_history):
        logger.warning("No training curves: the run logged no scalar (--logging_steps).")
        return None
    path = os.path.join(output_dir, CURVES_FILE)
    try:
        plot_training_curves(trainer.state.log_history, path, title=os.path.basename(os.path.normpath(output_dir)))
    except PlotsExtraMissing as error:
        logger.warning("No training curves: %s", error)
        return None
    return path


__all__ = [
    "CURVES_FILE",
    "MISSING_PLOTS",
    "PlotsExtraMissing",
    "plot_training_curves",
    "read_log_history",
    "scalar_series",
    "write_training_curves",
]
