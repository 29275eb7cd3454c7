"""Progress bars on the long loops (k-NN, the linear-probe sweep, tokenizer inspection, feature extraction): drawn on a
terminal, never in a pipe or a log file, never when the caller asks for quiet."""

import io
import sys

import datasets
import torch
from PIL import Image

from maskvision.cli.args import parse_arguments
from maskvision.cli.evaluate import FeatureArguments, KnnArguments
from maskvision.evaluation.knn import knn_scores
from maskvision.evaluation.linear import linear_probe
from maskvision.progress import progress_bar
from maskvision.training.runs.tokenizer import TokenizerArguments, build_tokenizer, evaluate_tokenizer


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def terminal(monkeypatch) -> Terminal:
    """stderr replaced by a terminal, in the test's body (pytest sets its own stderr between setup and call)."""
    stream = Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


def _features(count=64, width=8, classes=4):
    generator = torch.Generator().manual_seed(0)
    return torch.randn(count, width, generator=generator), torch.arange(count) % classes


def test_progress_bar_draws_on_a_terminal_only_and_when_enabled(monkeypatch):
    stderr = terminal(monkeypatch)
    list(progress_bar(range(3), desc="work"))
    assert "work" in stderr.getvalue() and "3/3" in stderr.getvalue()

    quiet = Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    list(progress_bar(range(3), desc="work", enabled=False))
    assert quiet.getvalue() == ""

    pipe = io.StringIO()  # not a terminal: a log file or a pipe
    monkeypatch.setattr(sys, "stderr", pipe)
    list(progress_bar(range(3), desc="work"))
    assert pipe.getvalue() == ""


def test_knn_shows_its_progress_over_the_test_images(monkeypatch):
    stderr = terminal(monkeypatch)
    features, labels = _features()
    knn_scores(features, labels, features[:10], 4, ks=(5,), chunk_size=4)
    assert "k-NN" in stderr.getvalue() and "10/10" in stderr.getvalue()


def test_knn_is_quiet_when_asked(monkeypatch):
    stderr = terminal(monkeypatch)
    features, labels = _features()
    knn_scores(features, labels, features[:10], 4, ks=(5,), progress=False)
    assert stderr.getvalue() == ""


def test_linear_probe_shows_the_sweep_and_the_final_head(monkeypatch):
    stderr = terminal(monkeypatch)
    features, labels = _features()
    result = linear_probe(features, labels, features, labels, 4, learning_rates=(1e-3, 1e-2), epochs=3, device="cpu")
    drawn = stderr.getvalue()
    assert "linear probe: sweep of 2 learning rates" in drawn
    assert f"linear probe: lr {result.learning_rate:g} on every training feature" in drawn and "3/3" in drawn


def test_tokenizer_inspection_shows_its_progress(monkeypatch):
    stderr = terminal(monkeypatch)
    model = build_tokenizer(TokenizerArguments(model_size="tiny"))
    images = [Image.new("RGB", (32, 32), (index * 20, 100, 50)) for index in range(6)]
    dataset = datasets.Dataset.from_dict({"image": images}).cast_column("image", datasets.Image())
    report, _ = evaluate_tokenizer(model, dataset, max_images=6, batch_size=2)
    assert report["images"] == 6
    assert "codebook health" in stderr.getvalue() and "3/3" in stderr.getvalue()


def test_eval_command_takes_no_progress(tmp_path):
    model = str(tmp_path)  # the command checks that the model's folder exists
    args, _ = parse_arguments((FeatureArguments, KnnArguments), ["--model", model, "--dataset", "demo", "--no_progress"],
                              prog="maskvision eval knn")  # fmt: skip
    assert args.progress is False
    args, _ = parse_arguments((FeatureArguments, KnnArguments), ["--model", model, "--dataset", "demo"], prog="eval")
    assert args.progress is True
