"""Model cards for maskvision checkpoints, rendered with huggingface_hub's `ModelCard` / `ModelCardData` from the
package's template (``templates/model_card.md``).

Everything a card states is read from files, never typed in: the model's config (architecture, method settings);
the run's ``training_args.json``, ``trainer_state.json`` and ``data_args.json`` (optimisation, steps, data); the
tokenizer's ``codebook_health.json``; and the JSON results ``maskvision eval`` and ``maskvision finetune`` write
(``eval_results.json``), which become the card's model-index: one `EvalResult` per protocol (k-NN, linear probe,
fine-tuning) and evaluated split, its best top-1 with the setting that gave it, and every record in a table with
the command that reproduces it.

An exported encoder (``<run>/encoder``) is described by the pretraining run it was exported from, a fine-tuned
classifier by the local checkpoint it was fine-tuned from (as its results record it), when those are on disk.
"""

from .describe import describe_backbone, eval_results
from .methods import CITATIONS, METHODS
from .render import card_files, render_card
from .sources import KINDS, CardSources, collect_sources, read_result_files

__all__ = [
    "CITATIONS",
    "KINDS",
    "METHODS",
    "CardSources",
    "card_files",
    "collect_sources",
    "describe_backbone",
    "eval_results",
    "read_result_files",
    "render_card",
]
