"""State dicts in the official releases' key layouts, and the official forward passes computed directly from them.

Key names, shapes and computations follow the authors' code: microsoft/unilm ``beit/modeling_pretrain.py``,
``beit/modeling_finetune.py``, ``beit2/modeling_pretrain.py``, ``beit2/modeling_vqkd.py``,
``beit2/norm_ema_quantizer.py``; microsoft/ExtreMA ``lib/builder.py`` and ``vits.py``; SwinTransformer/Transformer-SSL
``models/moby.py`` and ``models/swin_transformer.py``; timm's DeiT (MoBY's DeiT-S). Tiny sizes: 32 px images.
"""

import torch
import torch.nn.functional as F

EPS_VIT, EPS_SWIN, EPS_HEAD = 1e-6, 1e-5, 1e-5  # partial(nn.LayerNorm, eps=1e-6); nn.LayerNorm's default


def rand(*shape, scale=0.2):
    return torch.randn(*shape) * scale


def norm(state, prefix, dim):
    state[f"{prefix}.weight"] = 1 + rand(dim, scale=0.1)
    state[f"{prefix}.bias"] = rand(dim, scale=0.1)


def conv(state, prefix, channels, dim, patch):
    """A patch embedding ``Conv2d(channels, dim, patch, stride=patch)``."""
    linear(state, prefix, channels * patch * patch, dim)
    state[f"{prefix}.weight"] = state[f"{prefix}.weight"].reshape(dim, channels, patch, patch)


def linear(state, prefix, fan_in, fan_out, bias=True):
    state[f"{prefix}.weight"] = rand(fan_out, fan_in, scale=fan_in**-0.5)
    if bias:
        state[f"{prefix}.bias"] = rand(fan_out, scale=0.1)


# ------------------------------------------------------------------------------------- unilm ViT blocks (BEiT)
def swin_relative_position_index(window: int) -> torch.Tensor:
    """The index of each token pair's relative offset in a (2w - 1)² table (Swin's WindowAttention, BEiT's patches)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    relative[:, :, 0] += window - 1
    relative[:, :, 1] += window - 1
    relative[:, :, 0] *= 2 * window - 1
    return relative.sum(-1)


def beit_relative_position_index(grid: int) -> torch.Tensor:
    """unilm's ``relative_position_index`` (modeling_finetune.RelativePositionBias): the patches' offsets, then the
    three [CLS] entries (to token, from token, to itself)."""
    distances = (2 * grid - 1) ** 2 + 3
    index = torch.zeros((grid * grid + 1,) * 2, dtype=torch.long)
    index[1:, 1:] = swin_relative_position_index(grid)
    index[0, 0:] = distances - 3
    index[0:, 0] = distances - 2
    index[0, 0] = distances - 1
    return index


def vit_block_state(state, prefix, dim, heads, mlp, grid=None, gamma=True, unilm_bias=True):
    """One block: unilm's (``qkv`` without bias, ``q_bias``/``v_bias``) or timm's (``qkv.bias``)."""
    norm(state, f"{prefix}norm1", dim)
    linear(state, f"{prefix}attn.qkv", dim, 3 * dim, bias=not unilm_bias)
    if unilm_bias:
        state[f"{prefix}attn.q_bias"] = rand(dim, scale=0.1)
        state[f"{prefix}attn.v_bias"] = rand(dim, scale=0.1)
    if grid is not None:
        state[f"{prefix}attn.relative_position_bias_table"] = rand((2 * grid - 1) ** 2 + 3, heads)
        state[f"{prefix}attn.relative_position_index"] = beit_relative_position_index(grid)
    linear(state, f"{prefix}attn.proj", dim, dim)
    norm(state, f"{prefix}norm2", dim)
    linear(state, f"{prefix}mlp.fc1", dim, mlp)
    linear(state, f"{prefix}mlp.fc2", mlp, dim)
    if gamma:
        state[f"{prefix}gamma_1"] = 0.1 + rand(dim, scale=0.05)
        state[f"{prefix}gamma_2"] = 0.1 + rand(dim, scale=0.05)


def vit_block(x, state, prefix, heads, shared_bias=None, eps=EPS_VIT):
    batch, tokens, dim = x.shape
    if f"{prefix}attn.q_bias" in state:
        bias = torch.cat([state[f"{prefix}attn.q_bias"], torch.zeros(dim), state[f"{prefix}attn.v_bias"]])
    else:
        bias = state.get(f"{prefix}attn.qkv.bias")
    hidden = F.layer_norm(x, (dim,), state[f"{prefix}norm1.weight"], state[f"{prefix}norm1.bias"], eps)
    qkv = F.linear(hidden, state[f"{prefix}attn.qkv.weight"], bias).reshape(batch, tokens, 3, heads, -1)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    attention = (q * (dim // heads) ** -0.5) @ k.transpose(-2, -1)
    if f"{prefix}attn.relative_position_bias_table" in state:
        table = state[f"{prefix}attn.relative_position_bias_table"]
        index = state[f"{prefix}attn.relative_position_index"]
        attention = attention + table[index.view(-1)].view(tokens, tokens, -1).permute(2, 0, 1)
    if shared_bias is not None:
        attention = attention + shared_bias
    out = (attention.softmax(-1) @ v).transpose(1, 2).reshape(batch, tokens, dim)
    out = F.linear(out, state[f"{prefix}attn.proj.weight"], state[f"{prefix}attn.proj.bias"])
    x = x + state.get(f"{prefix}gamma_1", 1.0) * out
    hidden = F.layer_norm(x, (dim,), state[f"{prefix}norm2.weight"], state[f"{prefix}norm2.bias"], eps)
    hidden = F.linear(
        F.gelu(F.linear(hidden, state[f"{prefix}mlp.fc1.weight"], state[f"{prefix}mlp.fc1.bias"])),
        state[f"{prefix}mlp.fc2.weight"],
        state[f"{prefix}mlp.fc2.bias"],
    )
    return x + state.get(f"{prefix}gamma_2", 1.0) * hidden


def patch_embed(state, prefix, pixels):
    x = F.conv2d(
        pixels,
        state[f"{prefix}patch_embed.proj.weight"],
        state[f"{prefix}patch_embed.proj.bias"],
        stride=state[f"{prefix}patch_embed.proj.weight"].shape[-1],
    )
    return x.flatten(2).transpose(1, 2)


def vit_tokens(state, prefix, pixels, heads, bool_masked_pos=None):
    """unilm's forward_features up to (not including) the final norm: (B, 1 + N, D)."""
    x = patch_embed(state, prefix, pixels)
    if bool_masked_pos is not None:
        w = bool_masked_pos.unsqueeze(-1).float()
        x = x * (1 - w) + state[f"{prefix}mask_token"] * w
    x = torch.cat([state[f"{prefix}cls_token"].expand(x.shape[0], -1, -1), x], dim=1)
    if f"{prefix}pos_embed" in state:
        x = x + state[f"{prefix}pos_embed"]
    shared = None
    if f"{prefix}rel_pos_bias.relative_position_bias_table" in state:
        table, index = (
            state[f"{prefix}rel_pos_bias.relative_position_bias_table"],
            state[f"{prefix}rel_pos_bias.relative_position_index"],
        )
        shared = table[index.view(-1)].view(x.shape[1], x.shape[1], -1).permute(2, 0, 1)
    depth = len({key[len(prefix) :].split(".")[1] for key in state if key.startswith(f"{prefix}blocks.")})
    for index in range(depth):
        x = vit_block(x, state, f"{prefix}blocks.{index}.", heads, shared)
    return x


def layer_norm(x, state, prefix, eps=EPS_VIT):
    return F.layer_norm(x, x.shape[-1:], state[f"{prefix}.weight"], state[f"{prefix}.bias"], eps)


DIM, DEPTH, HEADS, MLP, GRID, PATCH, VOCAB = 32, 2, 2, 64, 8, 4, 48


def beit_pretraining_state(version: int = 1, abs_pos=False) -> dict:
    """``VisionTransformerForMaskedImageModeling`` (v1) / ``...CLS`` (v2: 1 early layer + 1 head layer, not shared)."""
    state = {"cls_token": rand(1, 1, DIM), "mask_token": rand(1, 1, DIM)}
    conv(state, "patch_embed.proj", 3, DIM, PATCH)
    if abs_pos:
        state["pos_embed"] = rand(1, GRID * GRID + 1, DIM)
    state["rel_pos_bias.relative_position_bias_table"] = rand((2 * GRID - 1) ** 2 + 3, HEADS)
    state["rel_pos_bias.relative_position_index"] = beit_relative_position_index(GRID)
    for index in range(DEPTH):
        vit_block_state(state, f"blocks.{index}.", DIM, HEADS, MLP)
    norm(state, "norm", DIM)
    linear(state, "lm_head", DIM, VOCAB)
    if version == 2:
        vit_block_state(state, "cls_pt_layers.0.", DIM, HEADS, MLP)
        norm(state, "cls_pt_norm", DIM)
        linear(state, "cls_pt_lm_head", DIM, VOCAB)
    return state


def beit_finetuned_state(labels: int = 5, mean_pooling: bool = True) -> dict:
    """``VisionTransformer`` of modeling_finetune with per-block relative position tables and a classifier."""
    state = {"cls_token": rand(1, 1, DIM)}
    conv(state, "patch_embed.proj", 3, DIM, PATCH)
    for index in range(DEPTH):
        vit_block_state(state, f"blocks.{index}.", DIM, HEADS, MLP, grid=GRID)
    norm(state, "fc_norm" if mean_pooling else "norm", DIM)
    linear(state, "head", DIM, labels)
    return state


# --------------------------------------------------------------------------------------------------- VQ-KD
CODE_DIM, DECODER_DIM, TEACHER_DIM = 8, 64, 24


def vqkd_state(codes: int = 40) -> dict:
    """``VQKD``: encoder / decoder fine-tuning ViTs (abs positions, fc_norm, no layer scale), task layers, the
    NormEMAVectorQuantizer's l2-normalised codebook and statistics, and the distillation teacher's keys."""
    state = {}
    parts = (("encoder", DIM, 3, PATCH, GRID), ("decoder", DECODER_DIM, CODE_DIM, 1, GRID))
    for part, dim, channels, patch, grid in parts:
        state[f"{part}.cls_token"] = rand(1, 1, dim)
        state[f"{part}.pos_embed"] = rand(1, grid * grid + 1, dim)
        conv(state, f"{part}.patch_embed.proj", channels, dim, patch)
        for index in range(DEPTH if part == "encoder" else 1):
            vit_block_state(
                state, f"{part}.blocks.{index}.", dim, HEADS if part == "encoder" else 1, 2 * dim, gamma=False
            )
        norm(state, f"{part}.fc_norm", dim)
    linear(state, "encode_task_layer.0", DIM, DIM)
    linear(state, "encode_task_layer.2", DIM, CODE_DIM)
    linear(state, "decode_task_layer.0", DECODER_DIM, DECODER_DIM)
    linear(state, "decode_task_layer.2", DECODER_DIM, TEACHER_DIM)
    codebook = F.normalize(torch.randn(codes, CODE_DIM), dim=-1)
    state.update({"quantize.embedding.weight": codebook, "quantize.embedding.cluster_size": torch.rand(codes),
                  "quantize.embedding.embed_avg": codebook.clone(), "quantize.embedding.initted": torch.tensor([1.0]),
                  "quantize.cluster_size": torch.rand(codes)})  # fmt: skip
    state["teacher_model.visual.proj"] = rand(DIM, TEACHER_DIM)  # as the official tokenizer loader finds them
    state["scaling_layer.shift"] = torch.zeros(1, 3, 1, 1)
    return state


def vqkd_codes(state, pixels):
    """``VQKD.get_codebook_indices``: [0, 1] → [-1, 1], encoder patch tokens through fc_norm, task layer, l2
    normalisation, the nearest code by ``|z|² + |e|² - 2 z·e``."""
    x = vit_tokens(state, "encoder.", pixels * 2 - 1, HEADS)
    features = layer_norm(x[:, 1:], state, "encoder.fc_norm")
    z = F.linear(
        torch.tanh(F.linear(features, state["encode_task_layer.0.weight"], state["encode_task_layer.0.bias"])),
        state["encode_task_layer.2.weight"],
        state["encode_task_layer.2.bias"],
    )
    z = F.normalize(z, dim=-1).reshape(-1, CODE_DIM)
    codebook = state["quantize.embedding.weight"]
    distance = z.pow(2).sum(1, keepdim=True) + codebook.pow(2).sum(1) - 2 * z @ codebook.T
    return distance.argmin(1).view(pixels.shape[0], -1)


# -------------------------------------------------------------------------------------------------- ExtreMA
PROJ_HIDDEN, PROJ_OUT = 40, 16


def extrema_state() -> dict:
    """``ExtreMA``: ``module.base_encoder.*`` / ``module.momentum_encoder.*`` (vits.VisionTransformer with its
    projector ``head``) and ``module.predictor.*``, as DDP saved them."""
    state = {}
    for branch in ("base_encoder", "momentum_encoder"):
        prefix = f"module.{branch}."
        state[f"{prefix}cls_token"] = rand(1, 1, DIM)
        state[f"{prefix}pos_embed"] = rand(1, GRID * GRID, DIM)
        conv(state, f"{prefix}patch_embed.proj", 3, DIM, PATCH)
        for index in range(DEPTH):
            vit_block_state(state, f"{prefix}blocks.{index}.", DIM, HEADS, MLP, gamma=False, unilm_bias=False)
        for index in range(2):
            block = f"{prefix}blocks_token.{index}."
            norm(state, f"{block}norm1", DIM)
            for name in ("q", "k", "v", "proj"):
                linear(state, f"{block}attn.{name}", DIM, DIM)
            norm(state, f"{block}norm2", DIM)
            linear(state, f"{block}mlp.fc1", DIM, 4 * DIM)
            linear(state, f"{block}mlp.fc2", 4 * DIM, DIM)
            state[f"{block}gamma_1"] = 0.1 + rand(DIM, scale=0.05)
            state[f"{block}gamma_2"] = 0.1 + rand(DIM, scale=0.05)
        norm(state, f"{prefix}norm", DIM)
        for index, (fan_in, fan_out) in zip(
            (0, 3, 6), ((DIM, PROJ_HIDDEN), (PROJ_HIDDEN, PROJ_HIDDEN), (PROJ_HIDDEN, PROJ_OUT))
        ):
            linear(state, f"{prefix}head.{index}", fan_in, fan_out)
            if index < 6:
                norm(state, f"{prefix}head.{index + 1}", fan_out)
    linear(state, "module.predictor.0", PROJ_OUT, PROJ_HIDDEN)
    norm(state, "module.predictor.1", PROJ_HIDDEN)
    linear(state, "module.predictor.3", PROJ_HIDDEN, PROJ_OUT)
    return state


def _mlp_ln_gelu(x, state, prefix, linears):
    for position, index in enumerate(linears):
        x = F.linear(x, state[f"{prefix}{index}.weight"], state[f"{prefix}{index}.bias"])
        if position < len(linears) - 1:
            x = F.gelu(layer_norm(x, state, f"{prefix}{index + 1}", EPS_HEAD))
    return x


def extrema_branch(state, branch, pixels, visible=None):
    """vits.VisionTransformer.forward_features (+ ``head``): patches + sin-cos positions, the visible patches of
    ``visible`` (B, V) indices, blocks, two class-attention blocks on the class token, norm, projector."""
    prefix = f"module.{branch}."
    x = patch_embed(state, prefix, pixels) + state[f"{prefix}pos_embed"]
    if visible is not None:
        x = torch.gather(x, 1, visible.unsqueeze(-1).expand(-1, -1, DIM))
    for index in range(DEPTH):
        x = vit_block(x, state, f"{prefix}blocks.{index}.", HEADS)
    cls = state[f"{prefix}cls_token"].expand(x.shape[0], -1, -1)
    for index in range(2):
        block = f"{prefix}blocks_token.{index}."
        u = layer_norm(torch.cat([cls, x], dim=1), state, f"{block}norm1")
        batch, tokens, _ = u.shape
        q = F.linear(u[:, 0], state[f"{block}attn.q.weight"], state[f"{block}attn.q.bias"]).reshape(batch, 1, HEADS, -1)
        k = F.linear(u, state[f"{block}attn.k.weight"], state[f"{block}attn.k.bias"]).reshape(batch, tokens, HEADS, -1)
        v = F.linear(u, state[f"{block}attn.v.weight"], state[f"{block}attn.v.bias"]).reshape(batch, tokens, HEADS, -1)
        q, k, v = (t.permute(0, 2, 1, 3) for t in (q, k, v))
        attention = ((q * (DIM // HEADS) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        out = (attention @ v).transpose(1, 2).reshape(batch, 1, DIM)
        cls = cls + state[f"{block}gamma_1"] * F.linear(
            out, state[f"{block}attn.proj.weight"], state[f"{block}attn.proj.bias"]
        )
        hidden = layer_norm(cls, state, f"{block}norm2")
        hidden = F.linear(
            F.gelu(F.linear(hidden, state[f"{block}mlp.fc1.weight"], state[f"{block}mlp.fc1.bias"])),
            state[f"{block}mlp.fc2.weight"],
            state[f"{block}mlp.fc2.bias"],
        )
        cls = cls + state[f"{block}gamma_2"] * hidden
    pooled = layer_norm(cls[:, 0], state, f"{prefix}norm")
    return _mlp_ln_gelu(pooled, state, f"{prefix}head.", (0, 3, 6))


def extrema_predict(state, projection):
    return _mlp_ln_gelu(projection, state, "module.predictor.", (0, 3))


# ---------------------------------------------------------------------------------------------------- MoBY
SWIN_DIM, SWIN_DEPTHS, SWIN_HEADS, WINDOW, QUEUE, MOBY_HIDDEN, MOBY_OUT = 16, (2, 2), (1, 2), 4, 12, 40, 16


def window_partition(x, window):
    batch, height, width, channels = x.shape
    x = x.view(batch, height // window, window, width // window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, channels)


def window_reverse(windows, window, height, width):
    batch = windows.shape[0] // (height * width // window // window)
    x = windows.view(batch, height // window, width // window, window, window, -1)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(batch, height, width, -1)


def swin_attention_mask(resolution, window, shift):
    """SwinTransformerBlock's ``attn_mask`` buffer for a shifted block."""
    image_mask = torch.zeros(1, resolution, resolution, 1)
    spans = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    count = 0
    for rows in spans:
        for columns in spans:
            image_mask[:, rows, columns, :] = count
            count += 1
    windows = window_partition(image_mask, window).view(-1, window * window)
    mask = windows.unsqueeze(1) - windows.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


def _swin_block_geometry(resolution, block):
    window, shift = WINDOW, (WINDOW // 2 if block % 2 else 0)
    if resolution <= window:  # SwinTransformerBlock: no partition and no shift when the window covers the input
        window, shift = resolution, 0
    return window, shift


def swin_state(prefix: str) -> dict:
    state = {}
    conv(state, f"{prefix}patch_embed.proj", 3, SWIN_DIM, PATCH)
    norm(state, f"{prefix}patch_embed.norm", SWIN_DIM)
    resolution = GRID
    for stage, (depth, heads) in enumerate(zip(SWIN_DEPTHS, SWIN_HEADS)):
        dim = SWIN_DIM * 2**stage
        for block in range(depth):
            window, shift = _swin_block_geometry(resolution, block)
            p = f"{prefix}layers.{stage}.blocks.{block}."
            norm(state, f"{p}norm1", dim)
            state[f"{p}attn.relative_position_bias_table"] = rand((2 * window - 1) ** 2, heads)
            state[f"{p}attn.relative_position_index"] = swin_relative_position_index(window)
            linear(state, f"{p}attn.qkv", dim, 3 * dim)
            linear(state, f"{p}attn.proj", dim, dim)
            norm(state, f"{p}norm2", dim)
            linear(state, f"{p}mlp.fc1", dim, 4 * dim)
            linear(state, f"{p}mlp.fc2", 4 * dim, dim)
            if shift:
                state[f"{p}attn_mask"] = swin_attention_mask(resolution, window, shift)
        if stage < len(SWIN_DEPTHS) - 1:
            linear(state, f"{prefix}layers.{stage}.downsample.reduction", 4 * dim, 2 * dim, bias=False)
            norm(state, f"{prefix}layers.{stage}.downsample.norm", 4 * dim)
            resolution //= 2
    norm(state, f"{prefix}norm", SWIN_DIM * 2 ** (len(SWIN_DEPTHS) - 1))
    return state


def swin_features(state, prefix, pixels):
    """SwinTransformer.forward_features: the average-pooled, normalised tokens of the last stage (B, C)."""
    x = layer_norm(patch_embed(state, prefix, pixels), state, f"{prefix}patch_embed.norm", EPS_SWIN)
    resolution = GRID
    for stage, (depth, heads) in enumerate(zip(SWIN_DEPTHS, SWIN_HEADS)):
        batch, _, dim = x.shape
        for block in range(depth):
            window, shift = _swin_block_geometry(resolution, block)
            p = f"{prefix}layers.{stage}.blocks.{block}."
            shortcut = x
            h = layer_norm(x, state, f"{p}norm1", EPS_SWIN).view(batch, resolution, resolution, dim)
            if shift:
                h = torch.roll(h, shifts=(-shift, -shift), dims=(1, 2))
            windows = window_partition(h, window).view(-1, window * window, dim)
            tokens = window * window
            qkv = F.linear(windows, state[f"{p}attn.qkv.weight"], state[f"{p}attn.qkv.bias"])
            q, k, v = qkv.reshape(-1, tokens, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
            attention = (q * (dim // heads) ** -0.5) @ k.transpose(-2, -1)
            table, index = state[f"{p}attn.relative_position_bias_table"], state[f"{p}attn.relative_position_index"]
            attention = attention + table[index.view(-1)].view(tokens, tokens, -1).permute(2, 0, 1).unsqueeze(0)
            if shift:
                mask = state[f"{p}attn_mask"]
                attention = attention.view(-1, mask.shape[0], heads, tokens, tokens) + mask[None, :, None]
                attention = attention.view(-1, heads, tokens, tokens)
            out = (attention.softmax(-1) @ v).transpose(1, 2).reshape(-1, tokens, dim)
            out = F.linear(out, state[f"{p}attn.proj.weight"], state[f"{p}attn.proj.bias"])
            h = window_reverse(out.view(-1, window, window, dim), window, resolution, resolution)
            if shift:
                h = torch.roll(h, shifts=(shift, shift), dims=(1, 2))
            x = shortcut + h.reshape(batch, -1, dim)
            hidden = layer_norm(x, state, f"{p}norm2", EPS_SWIN)
            hidden = F.linear(
                F.gelu(F.linear(hidden, state[f"{p}mlp.fc1.weight"], state[f"{p}mlp.fc1.bias"])),
                state[f"{p}mlp.fc2.weight"],
                state[f"{p}mlp.fc2.bias"],
            )
            x = x + hidden
        if stage < len(SWIN_DEPTHS) - 1:
            grid = x.view(batch, resolution, resolution, dim)
            merged = torch.cat([grid[:, 0::2, 0::2], grid[:, 1::2, 0::2], grid[:, 0::2, 1::2], grid[:, 1::2, 1::2]], -1)
            merged = layer_norm(
                merged.view(batch, -1, 4 * dim), state, f"{prefix}layers.{stage}.downsample.norm", EPS_SWIN
            )
            x = F.linear(merged, state[f"{prefix}layers.{stage}.downsample.reduction.weight"])
            resolution //= 2
    return layer_norm(x, state, f"{prefix}norm", EPS_SWIN).mean(1)


def deit_state(prefix: str) -> dict:
    """timm's DeiT (MoBY's DeiT-S): cls_token, pos_embed, blocks with a qkv bias, norm; head removed."""
    state = {f"{prefix}cls_token": rand(1, 1, DIM), f"{prefix}pos_embed": rand(1, GRID * GRID + 1, DIM)}
    conv(state, f"{prefix}patch_embed.proj", 3, DIM, PATCH)
    for index in range(DEPTH):
        vit_block_state(state, f"{prefix}blocks.{index}.", DIM, HEADS, MLP, gamma=False, unilm_bias=False)
    norm(state, f"{prefix}norm", DIM)
    return state


def deit_features(state, prefix, pixels):
    """timm VisionTransformer.forward_features (2021): the normalised [CLS] token."""
    return layer_norm(vit_tokens(state, prefix, pixels, HEADS), state, f"{prefix}norm")[:, 0]


def moby_mlp_state(state, prefix, fan_in):
    """MoBYMLP with 2 layers: linear_hidden = [Identity, Linear, BatchNorm1d, ReLU], linear_out."""
    linear(state, f"{prefix}linear_hidden.1", fan_in, MOBY_HIDDEN)
    norm(state, f"{prefix}linear_hidden.2", MOBY_HIDDEN)
    state[f"{prefix}linear_hidden.2.running_mean"] = rand(MOBY_HIDDEN)
    state[f"{prefix}linear_hidden.2.running_var"] = 0.5 + torch.rand(MOBY_HIDDEN)
    state[f"{prefix}linear_hidden.2.num_batches_tracked"] = torch.tensor(100)
    linear(state, f"{prefix}linear_out", MOBY_HIDDEN, MOBY_OUT)


def moby_mlp(x, state, prefix):
    """MoBYMLP in evaluation mode (BatchNorm on its running statistics)."""
    x = F.linear(x, state[f"{prefix}linear_hidden.1.weight"], state[f"{prefix}linear_hidden.1.bias"])
    bn = f"{prefix}linear_hidden.2."
    x = F.batch_norm(x, state[f"{bn}running_mean"], state[f"{bn}running_var"], state[f"{bn}weight"], state[f"{bn}bias"])
    return F.linear(F.relu(x), state[f"{prefix}linear_out.weight"], state[f"{prefix}linear_out.bias"])


def moby_state(encoder: str = "swin") -> dict:
    state = {}
    for branch in ("encoder.", "encoder_k."):
        state.update(swin_state(branch) if encoder == "swin" else deit_state(branch))
    width = SWIN_DIM * 2 ** (len(SWIN_DEPTHS) - 1) if encoder == "swin" else DIM
    moby_mlp_state(state, "projector.", width)
    moby_mlp_state(state, "projector_k.", width)
    moby_mlp_state(state, "predictor.", MOBY_OUT)
    state["queue1"] = F.normalize(torch.randn(MOBY_OUT, QUEUE), dim=0)
    state["queue2"] = F.normalize(torch.randn(MOBY_OUT, QUEUE), dim=0)
    state["queue_ptr"] = torch.tensor([4])
    return state
