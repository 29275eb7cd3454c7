"""`training/` is grouped into inputs / loop / runs; the module paths users imported before keep working."""

import importlib

import pytest


@pytest.mark.parametrize(
    "old, new",
    [("collators", "inputs.collators"), ("masking", "inputs.masking"), ("transforms", "inputs.transforms"),
     ("callbacks", "loop.callbacks"), ("trainer", "loop.trainer")],
)  # fmt: skip
def test_paths_from_before_the_grouping_are_the_same_modules(old, new):
    """`training/` grouped into inputs / loop / runs: the paths users imported keep working, as the same objects."""
    moved = importlib.import_module(f"maskvision.training.{new}")
    assert importlib.import_module(f"maskvision.training.{old}") is moved
    assert getattr(importlib.import_module("maskvision.training"), old) is moved
