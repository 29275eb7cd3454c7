"""`maskvision pretrain <method> ...`: one command per method, all through `run_pretraining`."""

import functools
import importlib

from .args import dispatch, exit_status, parse_arguments

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


def pretrain(method: str, argv: list[str]) -> int:
    from ..training.pretrain import DataArguments, run_pretraining

    recipe = load_recipe(method)
    data_args, model_args, training_args = parse_arguments(
        (DataArguments, recipe.model_arguments, recipe.training_arguments),
        argv,
        prog=f"maskvision pretrain {recipe.name}",
        description=(importlib.import_module(RECIPES[method]).__doc__ or "").split("\n\n")[0],
    )
    trainer = run_pretraining(recipe, data_args, model_args, training_args)
    return exit_status(trainer, training_args)


def main(argv: list[str]) -> int:
    return dispatch("maskvision pretrain", {method: functools.partial(pretrain, method) for method in RECIPES}, argv)
