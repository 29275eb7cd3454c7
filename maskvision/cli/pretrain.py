"""`maskvision pretrain <method> ...`: one command per method, all through `run_pretraining`.

The flags are parsed from the method's argument module (`ARGUMENTS`: its dataclasses, with transformers'
`TrainingArguments` and no model code), and the recipe is imported once they are: ``--help`` stays fast."""

import functools
import importlib

from .args import dispatch, exit_status, parse_arguments

# method → module holding its `RECIPE` (a `PretrainingRecipe`).
RECIPES: dict[str, str] = {
    "beit": "maskvision.training.recipes.beit",
    "extrema": "maskvision.training.recipes.extrema",
    "moby": "maskvision.training.recipes.moby",
}


def _recipe_module(method: str) -> str:
    if method not in RECIPES:
        raise ValueError(f"Unknown pretraining method {method!r}: choose one of {sorted(RECIPES)}.")
    return RECIPES[method]


def load_recipe(method: str):
    return importlib.import_module(_recipe_module(method)).RECIPE


def load_arguments(method: str):
    """The module of the method's flags (``<recipe module>_arguments``): ``ARGUMENTS``, the recipe's model and
    training argument types, and a docstring whose first paragraph describes the command."""
    return importlib.import_module(_recipe_module(method) + "_arguments")


def pretrain(method: str, argv: list[str]) -> int:
    from ..training.runs.arguments import DataArguments

    arguments = load_arguments(method)
    data_args, model_args, training_args = parse_arguments(
        (DataArguments, *arguments.ARGUMENTS),
        argv,
        prog=f"maskvision pretrain {method}",
        description=(arguments.__doc__ or "").split("\n\n")[0],
    )
    from ..training.runs.pretrain import run_pretraining

    trainer = run_pretraining(load_recipe(method), data_args, model_args, training_args)
    return exit_status(trainer, training_args)


def main(argv: list[str]) -> int:
    return dispatch("maskvision pretrain", {method: functools.partial(pretrain, method) for method in RECIPES}, argv)
