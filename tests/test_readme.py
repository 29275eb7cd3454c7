"""The README's quick start: exactly two commands, both Makefile targets, the same test command in CI, and a CLI
whose help lists its commands."""

import os
import re
import subprocess
import sys

from maskvision.cli import COMMANDS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(*parts: str) -> str:
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as handle:
        return handle.read()


def quick_start_commands() -> list[str]:
    """The commands of the first code block under the README's "Quick start" heading, comments stripped."""
    section = re.search(r"^## Quick start\n(.*?)(?=^## |\Z)", read("README.md"), re.M | re.S)
    assert section, "README.md has no '## Quick start' section"
    block = re.search(r"```(?:bash|sh|shell)?\n(.*?)```", section.group(1), re.S)
    assert block, "the quick start has no code block"
    lines = (line.split("#", 1)[0].strip() for line in block.group(1).splitlines())
    return [line for line in lines if line]


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w.-]*):(?!=)", read("Makefile"), re.M))


def test_quick_start_is_make_demo_and_make_test():
    assert quick_start_commands() == ["make demo", "make test"]


def test_quick_start_commands_are_makefile_targets():
    targets = makefile_targets()
    for command in quick_start_commands():
        assert command.split()[1] in targets, f"{command!r}: no such Makefile target ({sorted(targets)})"
    demo_recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", read("Makefile"), re.M)
    assert demo_recipe and "maskvision demo" in demo_recipe.group(1)
    test_recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", read("Makefile"), re.M)
    assert test_recipe and "pytest" in test_recipe.group(1) and "HF_HUB_OFFLINE=1" in test_recipe.group(1)


def test_ci_runs_the_readme_test_command():
    script = read(".ci", "run")
    commands = [line.strip() for line in script.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert "make test" in commands
    assert os.access(os.path.join(ROOT, ".ci", "run"), os.X_OK)


def test_cli_help_lists_every_command():
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, "-m", "maskvision", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    listed = re.findall(r"^  (\S+)  ", result.stdout, re.M)
    assert listed == list(COMMANDS)
    assert "demo" in listed


def test_python_usage_snippet_trains_and_exports(tmp_path, monkeypatch):
    """The README's Trainer snippet, run as written on a tiny configuration: a few steps on the demo data."""
    section = re.search(r"^### In Python.*?```python\n(.*?)```", read("README.md"), re.M | re.S)
    assert section, "README.md has no Python usage snippet"
    code = section.group(1)
    settings = re.search(r"^SIZE, IMAGE, PATCH, DATA, OUT, STEPS = .*$", code, re.M)
    assert settings, "the snippet's settings line changed: update this test"
    tiny = f'SIZE, IMAGE, PATCH, DATA, OUT, STEPS = "tiny", 32, 8, "demo", {str(tmp_path / "run")!r}, 2'
    code = code.replace(settings.group(0), tiny).replace(
        "per_device_train_batch_size=64", "per_device_train_batch_size=8"
    )
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert os.path.isfile(tmp_path / "run" / "encoder" / "model.safetensors")
    assert os.path.isfile(tmp_path / "run" / "encoder" / "preprocessor_config.json")
