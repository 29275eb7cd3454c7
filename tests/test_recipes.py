"""Recipes as data: every row of every table in `maskvision.training.recipes.official` matches the defaults the
recipe resolves to, each row names its official source, and RECIPES.md is the tables as they are now."""

import os

import pytest

from maskvision.training.recipes.official import TABLES, render_markdown

RECIPES_MD = os.path.join(os.path.dirname(os.path.dirname(__file__)), "RECIPES.md")


@pytest.mark.parametrize("table", TABLES, ids=lambda table: table.title)
def test_every_row_is_the_default_the_recipe_resolves_to(table):
    defaults = table.defaults()
    mismatches = {row.setting: (row.read(defaults), row.value) for row in table.rows if row.read(defaults) != row.value}
    assert not mismatches, f"{table.title}: (resolved, table) {mismatches}"


def test_every_row_cites_an_official_source_and_the_settings_the_issue_lists():
    for table in TABLES:
        settings = {row.setting.split(" (")[0] for row in table.rows}
        assert {
            "optimizer",
            "betas",
            "learning rate",
            "epochs",
            "weight decay",
            "no weight decay on",
            "gradient clipping",
        } <= settings, table.title
        for row in table.rows:
            assert row.official and row.source, (table.title, row.setting)


def test_recipes_md_is_up_to_date():
    with open(RECIPES_MD, encoding="utf-8") as handle:
        assert handle.read() == render_markdown(), (
            "RECIPES.md is stale: python -m maskvision.training.recipes.official > RECIPES.md"
        )


def test_default_epochs_are_the_papers():
    from maskvision.cli.pretrain import RECIPES, load_recipe

    epochs = {name: load_recipe(name).training_arguments().num_train_epochs for name in RECIPES}
    assert epochs == {"beit": 800, "extrema": 300, "moby": 300}  # not Trainer's 3


@pytest.mark.parametrize("method, start, floor", [("moby", 5e-7, 5e-6), ("beit", 0.0, 1e-5)])
def test_cosine_schedule_warms_up_from_and_ends_at_the_official_bounds_scaled_with_the_batch(method, start, floor):
    import torch

    from maskvision.cli.pretrain import load_recipe
    from maskvision.training.loop.trainer import MaskVisionTrainer

    args = load_recipe(method).training_arguments(per_device_train_batch_size=8, warmup_steps=4, use_cpu=True)
    trainer = MaskVisionTrainer(model=torch.nn.Linear(4, 4), args=args)
    optimizer = trainer.create_optimizer()
    scheduler = trainer.create_scheduler(20, optimizer)
    rates = []
    for _ in range(20):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step(), scheduler.step()
    rates.append(optimizer.param_groups[0]["lr"])
    scale = 8 / args.lr_reference_batch
    assert rates[0] == pytest.approx(start * scale) and max(rates) == pytest.approx(args.base_learning_rate * scale)
    assert rates[-1] == pytest.approx(floor * scale) and min(rates[4:]) == pytest.approx(floor * scale)
