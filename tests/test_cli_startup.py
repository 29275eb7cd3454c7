"""`import maskvision` and `maskvision --help` import neither torch nor transformers (measured in
benchmarks/cli_startup.py), and still register every class with the transformers Auto classes once transformers
loads them; a command's ``--help`` imports its argument dataclasses and not the Trainer, the data loading or the
models."""

import os
import subprocess
import sys

import maskvision
from maskvision.auto import AUTO_CLASSES, MODEL_TYPES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code: str) -> str:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ROOT}
    result = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_import_maskvision_and_its_help_load_neither_torch_nor_transformers():
    code = (
        "import sys\nimport maskvision\nfrom maskvision.cli import main\nmain(['--help'])\n"
        "print(sorted(name for name in ('torch', 'transformers') if name in sys.modules))"
    )
    assert _python(code).splitlines()[-1] == "[]"


def test_command_help_imports_the_arguments_without_the_trainer_the_data_or_the_models():
    code = (
        "import sys\nfrom maskvision.cli import main\nfrom maskvision.cli.pretrain import RECIPES\n"
        "commands = [['pretrain', method] for method in RECIPES]\n"
        "for command in commands + [['tokenizer', 'train'], ['finetune'], ['eval', 'knn'], ['eval', 'linear']]:\n"
        "    try:\n        main([*command, '--help'])\n    except SystemExit:\n        pass\n"
        "heavy = ('datasets', 'kornia', 'transformers.trainer', 'transformers.models', 'maskvision.modeling',"
        " 'maskvision.configuration.configuration_beit_mim', 'maskvision.training.runs.pretrain',"
        " 'maskvision.evaluation.run')\n"
        "print(sorted(name for name in heavy if name in sys.modules))"
    )
    assert _python(code).splitlines()[-1] == "[]"


def test_each_recipe_runs_with_the_argument_types_its_help_shows():
    from maskvision.cli.pretrain import RECIPES, load_arguments, load_recipe

    for method in RECIPES:
        recipe = load_recipe(method)
        assert (recipe.model_arguments, recipe.training_arguments) == load_arguments(method).ARGUMENTS


def test_after_import_maskvision_the_auto_classes_load_a_saved_model(tmp_path):
    model = maskvision.DVAETokenizer(
        maskvision.DVAEConfig(vocab_size=16, hidden_size=8, num_groups=1, blocks_per_group=1, code_embedding_size=8)
    )
    model.save_pretrained(tmp_path)
    code = (
        "import maskvision\nfrom transformers import AutoConfig, AutoModel\n"
        f"config = AutoConfig.from_pretrained({str(tmp_path)!r})\n"
        f"model = AutoModel.from_pretrained({str(tmp_path)!r})\n"
        "print(type(config).__name__, type(model).__name__, type(model).__module__)"
    )
    assert _python(code) == "DVAEConfig DVAETokenizer maskvision.modeling.modeling_dvae"


def test_a_config_imported_first_registers_its_model_once_its_module_has_run():
    # transformers' BeitConfig loads `modeling_auto` (for its docstring) while maskvision's config module imports it:
    # the model is registered when that module has finished, not in the middle of it.
    code = (
        "from maskvision import BeitMimConfig\nfrom transformers import AutoModel, AutoModelForPreTraining\n"
        "print(AutoModel._model_mapping[BeitMimConfig].__name__, "
        "AutoModelForPreTraining._model_mapping[BeitMimConfig].__name__)"
    )
    assert _python(code) == "BeitMimForPreTraining BeitMimForPreTraining"


def test_once_imported_the_classes_themselves_are_registered_under_their_model_types():
    from transformers import CONFIG_MAPPING, AutoModel, AutoModelForPreTraining

    for _, config_name, _, model_name, pretraining in AUTO_CLASSES:
        config, model = getattr(maskvision, config_name), getattr(maskvision, model_name)
        assert config.model_type == MODEL_TYPES[config_name] and model.config_class is config
        assert CONFIG_MAPPING[config.model_type] is config and AutoModel._model_mapping[config] is model
        assert (config in AutoModelForPreTraining._model_mapping) == pretraining
    assert set(maskvision.__all__) <= set(dir(maskvision))
