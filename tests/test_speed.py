"""Speed features on every method: gradient checkpointing, bf16 autocast (the Trainer's --bf16), SDPA / eager
attention through transformers' attention interface, the channels-last tokenizer, and the Trainer's flags."""

import copy

import pytest
import torch
from conftest import TINY_VIT, tiny_beit_config, tiny_dvae, tiny_extrema_config, tiny_moby_config, tiny_swin_config
from transformers import BeitModel

from maskvision import BeitMimConfig, BeitMimForPreTraining, ExtremaForPreTraining, MobyForPreTraining
from maskvision.configuration.configuration_moby import moby_vit_backbone_config
from maskvision.training.inputs.masking import RandomMaskGenerator
from maskvision.training.loop.trainer import MaskVisionTrainer
from maskvision.training.runs.pretrain import PretrainingArguments

# Patches of 8 px: a 4x4 grid of tokens, the cheapest that still exercises every stage.
PATCH = 8


def tiny_beit(drop_path_rate: float = 0.1) -> tuple[BeitMimForPreTraining, dict]:
    model = BeitMimForPreTraining(
        tiny_beit_config(
            patch_size=PATCH,
            hidden_size=32,
            intermediate_size=64,
            drop_path_rate=drop_path_rate,
            vocab_size=64,
            num_masking_patches=6,
            min_num_patches=2,
        )
    )
    model.set_tokenizer(tiny_dvae(num_groups=2, image_size=8))
    generator = torch.Generator().manual_seed(0)
    side = model.config.grid_size * model.tokenizer.downsample_factor
    batch = {
        "pixel_values": torch.randn(4, 3, 32, 32, generator=generator),
        "tokenizer_pixel_values": torch.rand(4, 3, side, side, generator=generator),
        "bool_masked_pos": torch.rand(4, 16, generator=generator).argsort(1).argsort(1) < 6,
    }
    return model, batch


def tiny_extrema(drop_path_rate: float = 0.1) -> tuple[ExtremaForPreTraining, dict]:
    model = ExtremaForPreTraining(
        tiny_extrema_config(
            backbone={"patch_size": PATCH, "drop_path_rate": drop_path_rate},
            mask_ratio=0.75,
            num_masks=2,
        )
    )
    generator = torch.Generator().manual_seed(0)
    batch = {
        "pixel_values": torch.randn(4, 3, 32, 32, generator=generator),
        "teacher_pixel_values": torch.randn(4, 3, 32, 32, generator=generator),
        "bool_masked_pos": RandomMaskGenerator(4, 0.75, 2).gen(4, generator),
    }
    return model, batch


def tiny_moby(backbone: str, drop_path_rate: float = 0.1) -> tuple[MobyForPreTraining, dict]:
    if backbone == "swin":
        config = tiny_swin_config(drop_path_rate=drop_path_rate)
    else:
        config = moby_vit_backbone_config("tiny", **{**TINY_VIT, "patch_size": PATCH}, drop_path_rate=drop_path_rate)
    model = MobyForPreTraining(tiny_moby_config(backbone_config=config, projection_dim=16, queue_size=32))
    generator = torch.Generator().manual_seed(0)
    batch = {key: torch.randn(4, 3, 32, 32, generator=generator) for key in ("pixel_values", "pixel_values_2")}
    return model, batch


BUILDERS = {
    "beit": tiny_beit,
    "extrema": tiny_extrema,
    "moby_swin": lambda **kw: tiny_moby("swin", **kw),
    "moby_vit": lambda **kw: tiny_moby("vit", **kw),
}


def loss_and_gradients(model, batch, seed: int = 0):
    """Loss and gradients of one training forward/backward, and the bytes autograd saved for the backward."""
    saved = 0

    def pack(tensor):
        nonlocal saved
        saved += tensor.numel() * tensor.element_size()
        return tensor

    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # the same drop-path draws in both runs
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = model(**batch).loss
    loss.backward()
    gradients = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), gradients, saved


@pytest.mark.parametrize("method", sorted(BUILDERS))
def test_gradient_checkpointing_gives_the_same_gradients_with_less_saved(method):
    model, batch = BUILDERS[method]()
    loss, gradients, saved = loss_and_gradients(model, batch)
    model.activation_checkpointing_enable()  # what Trainer's --activation_checkpointing (formerly --gradient_checkpointing) calls
    checkpointed_loss, checkpointed_gradients, checkpointed_saved = loss_and_gradients(model, batch)
    torch.testing.assert_close(checkpointed_loss, loss)
    assert gradients.keys() == checkpointed_gradients.keys() and len(gradients) > 10
    for name, gradient in gradients.items():
        torch.testing.assert_close(checkpointed_gradients[name], gradient, rtol=1e-4, atol=1e-6, msg=name)
    assert checkpointed_saved < 0.7 * saved  # the layers' activations are recomputed, not kept


def test_trainer_flag_turns_checkpointing_on(tmp_path):
    model, batch = tiny_extrema()
    args = PretrainingArguments(
        output_dir=str(tmp_path),
        activation_checkpointing=True,
        max_steps=1,
        use_cpu=True,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        save_strategy="no",
    )
    rows = [{key: value[index] for key, value in batch.items()} for index in range(4)]
    assert not any(layer.gradient_checkpointing for layer in model.backbone.layers)
    trainer = MaskVisionTrainer(model=model, args=args, train_dataset=rows)
    trainer.train()
    assert all(layer.gradient_checkpointing for layer in model.backbone.layers)
    assert trainer.state.global_step == 1 and trainer.state.log_history[-1]["train_loss"] > 0


@pytest.mark.parametrize("method", sorted(BUILDERS))
def test_bf16_autocast_trains_every_method(method):
    model, batch = BUILDERS[method](drop_path_rate=0.0)
    model.train()
    full = model(**batch).loss
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what Trainer's --bf16 does around the forward
        output = model(**batch)
    output.loss.backward()
    assert output.loss.dtype == torch.float32  # losses are computed in fp32
    assert torch.isfinite(output.loss) and output.loss.item() == pytest.approx(full.item(), rel=0.05)
    gradients = [p.grad for p in model.parameters() if p.grad is not None]
    assert gradients and all(torch.isfinite(g).all() for g in gradients)


def test_bf16_autocast_leaves_the_tokenizer_ids_alone():
    model, batch = tiny_beit()
    reference = model.tokenize(batch["tokenizer_pixel_values"])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(model.tokenize(batch["tokenizer_pixel_values"]), reference)


@pytest.mark.parametrize("method", sorted(BUILDERS))
def test_sdpa_and_eager_attention_agree(method):
    model, batch = BUILDERS[method](drop_path_rate=0.0)
    model.eval()
    losses = {}
    for implementation in ("eager", "sdpa"):
        model.set_attn_implementation(implementation)
        encoders = [
            module
            for module in model.modules()
            if isinstance(module, (BeitModel,)) or type(module).__name__ == "SwinModel"
        ]
        assert encoders and all(e.config._attn_implementation == implementation for e in encoders)
        with torch.no_grad():
            losses[implementation] = model(**batch).loss
    torch.testing.assert_close(losses["sdpa"], losses["eager"], rtol=1e-5, atol=1e-5)


def test_tokenizer_runs_channels_last_with_the_same_ids():
    model, batch = tiny_beit()
    tokenizer = model.tokenizer
    convolutions = [m.weight for m in tokenizer.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convolutions and all(w.is_contiguous(memory_format=torch.channels_last) for w in convolutions)
    contiguous = copy.deepcopy(tokenizer).to(memory_format=torch.contiguous_format)
    pixels = batch["tokenizer_pixel_values"]
    expected = contiguous.get_codebook_indices(pixels).flatten(1)
    assert torch.equal(model.tokenize(pixels), expected)


def test_beit_vit_base_224_checkpointed_step_slow():
    """ViT-B/16 at 224 px (the paper's): one checkpointed forward/backward (bf16 on a CPU without bf16 matmul units
    is emulated and slow; the tiny configurations above cover bf16)."""
    model = BeitMimForPreTraining(BeitMimConfig.from_size("base", image_size=224, patch_size=16, vocab_size=8192))
    model.activation_checkpointing_enable()
    model.train()
    mask = torch.rand(1, 196).argsort(1).argsort(1) < 75
    loss = model(
        pixel_values=torch.randn(1, 3, 224, 224), bool_masked_pos=mask, labels=torch.randint(0, 8192, (1, 196))
    ).loss
    loss.backward()
    assert loss.item() == pytest.approx(9.0, abs=1.0)  # ~ln(8192) at initialisation
    assert model.beit.layers[11].attention.q_proj.weight.grad.abs().sum() > 0


def test_beit_step_compiles_slow():
    """`--torch_compile` wraps the model in `torch.compile`: TorchDynamo captures BEiT's training step (graph breaks
    only at the data-dependent selection of the masked tokens) and gives the eager loss and gradients. The
    `aot_eager` backend checks the capture without inductor's code generation (minutes on a CPU)."""
    model, batch = tiny_beit(drop_path_rate=0.0)
    batch["labels"] = model.tokenize(batch.pop("tokenizer_pixel_values"))  # the encoder's step, ids given
    loss, gradients, _ = loss_and_gradients(model, batch)
    compiled = torch.compile(model, backend="aot_eager")
    compiled_loss, compiled_gradients, _ = loss_and_gradients(compiled, batch)
    torch.testing.assert_close(compiled_loss, loss)
    compiled_gradients = {name.removeprefix("_orig_mod."): value for name, value in compiled_gradients.items()}
    assert compiled_gradients.keys() == gradients.keys()
    for name, gradient in gradients.items():
        torch.testing.assert_close(compiled_gradients[name], gradient, msg=name)
