"""`maskvision pretrain <method> ...`: one command per method, all through `run_pretraining`."""

import importlib
import sys

from ..pretrain import DataArguments, run_pretraining
from .args import exit_status, parse_arguments

# method → module holding its `RECIPE` (a `PretrainingRecipe`).
RECIPES: dict[str, str] = {
    "beit": "maskvision.training.recipes.beit",
    "extrema": "maskvision.training.recipes.extrema",
    "moby": "maskvision.training.recipes.moby",
}


def load_recipe(method: str):
    if method not in RECIPES:
        raise ValueError(f"Unknown pretraining method {method!r}: choose one of {sorted(RECIPES)}.")
    return importlib.import_module(RECIPES[method]).RECIPE


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: maskvision pretrain {{{','.join(RECIPES)}}} [options | config.yaml [options]]")
        return 0
    if argv[0] not in RECIPES:
        print(f"maskvision pretrain: unknown method {argv[0]!r}; choose one of {sorted(RECIPES)}.", file=sys.stderr)
        return 2
    recipe = load_recipe(argv[0])
    data_args, model_args, training_args = parse_arguments(
        (DataArguments, recipe.model_arguments, recipe.training_arguments),
        argv[1:],
        prog=f"maskvision pretrain {recipe.name}",
    )
    trainer = run_pretraining(recipe, data_args, model_args, training_args)
    return exit_status(trainer, training_args)
