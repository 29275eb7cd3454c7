"""One way to the Hub for every kind of maskvision checkpoint: write the repo's files, then upload them in one commit.

Four kinds of checkpoint go to the Hub:

============  =========================================================  ===========================================
kind          what                                                       loads with
============  =========================================================  ===========================================
tokenizer     a visual tokenizer (dVAE, VQ-KD)                           ``AutoModel`` + ``trust_remote_code=True``
pretraining   a pretraining checkpoint (BEiT, ExtreMA, MoBY)             ``AutoModel`` + ``trust_remote_code=True``
encoder       a stock encoder exported from one (``<run>/encoder``)      ``AutoModel``, image-feature-extraction
classifier    a stock classifier from ``maskvision finetune``            ``pipeline("image-classification")``
============  =========================================================  ===========================================

`write_repo_files` writes exactly what the repo holds into an empty folder: ``config.json``, ``model.safetensors``
(shards and their index for big models), ``preprocessor_config.json``, ``README.md`` (the model card,
`maskvision.cards`), the pictures the card shows (``training_curves.png``, when the run drew it) and, for maskvision
classes, their self-contained remote code with ``auto_map`` (`maskvision.remote_code`). `push` uploads such a folder as ONE
commit (`HfApi.create_commit` with every file) after ``create_repo(exist_ok=True)``, so a push that fails midway
publishes nothing. `push_model` (the models' ``push_to_hub``) and `push_directory`
(``maskvision push DIR``) are the two in turn.
"""

import os
import shutil
import tempfile

from huggingface_hub import CommitOperationAdd, HfApi, ModelCard
from huggingface_hub.errors import HfHubHTTPError
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification
from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

from .cards import KINDS, card_files, collect_sources, read_result_files, render_card
from .remote_code import write_remote_code

REMOTE_CODE_KINDS = ("tokenizer", "pretraining")
CARD_FILE = "README.md"
WEIGHTS_FILES = ("model.safetensors", "model.safetensors.index.json")
PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
KIND_HELP = (
    "a visual tokenizer (`maskvision tokenizer train`), a pretraining checkpoint (`maskvision pretrain` output_dir), "
    "an exported encoder (<output_dir>/encoder) or a fine-tuned classifier (`maskvision finetune` output_dir)"
)
_STOCK_MODELS = {
    name for names in MODEL_MAPPING_NAMES.values() for name in ([names] if isinstance(names, str) else names)
}


def model_kind(model) -> str:
    """Which of `KINDS` a model is: maskvision tokenizers and pretraining models (also when loaded as remote
    code), stock image classifiers and stock image encoders."""
    name = type(model).__name__
    if model.config.model_type.startswith("maskvision_"):
        if callable(getattr(model, "get_codebook_indices", None)):
            return "tokenizer"
        if callable(getattr(model, "encoder_for_export", None)):
            return "pretraining"
    elif name.endswith("ForImageClassification"):
        return "classifier"
    elif name in _STOCK_MODELS and model.main_input_name == "pixel_values":
        return "encoder"
    raise ValueError(
        f"{name} (model_type {model.config.model_type!r}) is none of the checkpoints maskvision pushes: {KIND_HELP}."
    )


def load_checkpoint(directory: str | os.PathLike):
    """A checkpoint directory of any kind → ``(model, image_processor or None, kind)``; safetensors weights only."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory!r} is not a directory.")
    files = set(os.listdir(directory))
    if "config.json" not in files or not files & set(WEIGHTS_FILES):
        if files & set(PICKLED_WEIGHTS):
            reason = "its weights are pickled (pytorch_model.bin): load the model and save_pretrained it (safetensors)"
        else:
            checkpoints = sorted(name for name in files if name.startswith("checkpoint-"))
            reason = "it has no config.json and model.safetensors"
            if checkpoints:
                reason += f" (its Trainer checkpoints are directories: {os.path.join(directory, checkpoints[-1])})"
        raise ValueError(f"{directory!r} holds no checkpoint maskvision can push: {reason}. Expected {KIND_HELP}.")
    config = AutoConfig.from_pretrained(directory)
    if any(name.endswith("ForImageClassification") for name in config.architectures or []):
        model = AutoModelForImageClassification.from_pretrained(directory, use_safetensors=True)
    else:
        model = AutoModel.from_pretrained(directory, use_safetensors=True)
    kind = model_kind(model)
    has_processor = os.path.isfile(os.path.join(directory, "preprocessor_config.json"))
    processor = AutoImageProcessor.from_pretrained(directory) if has_processor else None
    return model, processor, kind


def _directory_card(
    model, kind: str, directory: str, repo_id: str | None, results: list[str], tags, card_dir: str | None = None
) -> tuple[ModelCard, dict[str, str]]:
    """(the card, the files it shows: {path in the repo: path on disk})."""
    sources = collect_sources(model, kind, directory=directory, results=read_result_files(list(results)))
    return render_card(sources, repo_id=repo_id, tags=tags, card_dir=card_dir), card_files(sources)


def card_for_directory(
    directory: str, repo_id: str | None = None, results: list[str] = (), tags=None, card_dir: str | None = None
) -> ModelCard:
    """The model card of a checkpoint directory (``maskvision card``), with the records of the ``results`` files
    on top of the directory's own ``eval_results.json``; ``card_dir``: the folder the card will be written to, from
    which its pictures are linked (default: linked as the Hub repo holds them)."""
    model, _, kind = load_checkpoint(directory)
    return _directory_card(model, kind, os.fspath(directory), repo_id, results, tags, card_dir)[0]


def write_repo_files(
    model,
    save_directory: str | os.PathLike,
    *,
    image_processor=None,
    card: ModelCard | None = None,
    repo_id: str | None = None,
    tags: list[str] | None = None,
    max_shard_size: int | str | None = "50GB",
    card_pictures: dict[str, str] | None = None,
) -> list[str]:
    """Write into the empty ``save_directory`` exactly what the model's Hub repo holds; returns the paths, sorted.

    ``image_processor`` defaults to the model's own (`image_processor()` of maskvision models; stock models need
    one). ``card`` defaults to the card rendered from the model and the directory it was loaded from, with the
    pictures it shows; a given ``card`` comes with its ``card_pictures`` ({path in the repo: path on disk}).
    """
    save_directory = os.fspath(save_directory)
    if os.listdir(save_directory):
        raise ValueError(f"Stage into an empty directory: {save_directory!r} is not empty.")
    kind = model_kind(model)
    if image_processor is None:
        if not callable(getattr(model, "image_processor", None)):
            raise ValueError(
                f"A {kind} on the Hub needs its image processor (preprocessor_config.json) so that pipelines and "
                "AutoImageProcessor work: pass image_processor=..."
            )
        image_processor = model.image_processor()
    model.save_pretrained(save_directory, max_shard_size=max_shard_size)
    image_processor.save_pretrained(save_directory)
    if kind in REMOTE_CODE_KINDS:
        write_remote_code(type(model), save_directory)
    if card is None:
        sources = collect_sources(model, kind)
        card, card_pictures = render_card(sources, repo_id=repo_id, tags=tags), card_files(sources)
    card.save(os.path.join(save_directory, CARD_FILE))
    for repo_path, local_path in (card_pictures or {}).items():
        shutil.copyfile(local_path, os.path.join(save_directory, repo_path))
    return sorted(
        os.path.relpath(os.path.join(root, name), save_directory).replace(os.sep, "/")
        for root, _, names in os.walk(save_directory)
        for name in names
    )


def push(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    commit_message: str | None = None,
    commit_description: str | None = None,
    private: bool | None = None,
    token: bool | str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
):
    """Upload every file of a ``folder`` (`write_repo_files`) to the model repo ``repo_id`` as one commit (created if
    needed).
    Returns the `CommitInfo` (a str: the commit's URL)."""
    folder = os.fspath(folder)
    paths = sorted(
        os.path.relpath(os.path.join(root, name), folder) for root, _, names in os.walk(folder) for name in names
    )
    if not paths:
        raise ValueError(f"Nothing to push: {folder!r} is empty.")
    operations = [
        CommitOperationAdd(path_in_repo=path.replace(os.sep, "/"), path_or_fileobj=os.path.join(folder, path))
        for path in paths
    ]
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    if revision is not None and not revision.startswith("refs/pr"):
        try:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        except HfHubHTTPError as error:  # a PR to a repo we cannot write to: the branch must exist already
            if not (create_pr and error.response is not None and error.response.status_code == 403):
                raise
    return api.create_commit(
        repo_id,
        operations,
        commit_message=commit_message or "Upload model with maskvision",
        commit_description=commit_description,
        revision=revision,
        create_pr=create_pr,
    )


def push_model(
    model,
    repo_id: str,
    *,
    image_processor=None,
    card: ModelCard | None = None,
    tags: list[str] | None = None,
    max_shard_size: int | str | None = "50GB",
    card_pictures: dict[str, str] | None = None,
    **push_options,
):
    """Write ``model``'s repo files (`write_repo_files`) into a temporary folder and push it as one commit (`push`)."""
    with tempfile.TemporaryDirectory(prefix="maskvision-push-") as folder:
        write_repo_files(
            model,
            folder,
            image_processor=image_processor,
            card=card,
            repo_id=repo_id,
            tags=tags,
            max_shard_size=max_shard_size,
            card_pictures=card_pictures,
        )
        return push(folder, repo_id, **push_options)


def push_directory(directory: str | os.PathLike, repo_id: str, *, results: list[str] = (), tags=None, **push_options):
    """Push a checkpoint directory of any kind (``maskvision push``): its repo files written from the loaded model, with
    the card of the directory (its results, the run it comes from) and the results of ``results`` files."""
    directory = os.fspath(directory)
    model, processor, kind = load_checkpoint(directory)
    card, pictures = _directory_card(model, kind, directory, repo_id, results, tags)
    return push_model(model, repo_id, image_processor=processor, card=card, card_pictures=pictures, **push_options)


__all__ = [
    "KINDS",
    "card_for_directory",
    "load_checkpoint",
    "model_kind",
    "push",
    "push_directory",
    "push_model",
    "write_repo_files",
]
