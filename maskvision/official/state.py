"""Reading an official state dict key by key: every key is either converted or dropped with a stated reason, and
a key left over is an error, so a checkpoint of an unexpected layout never loads partially.

Also the conversion shared by the official ViTs (unilm BEiT, BEiT v2's VQ-KD, ExtreMA, MoBY's DeiT-S, all timm-style
blocks) into the layers of transformers' `BeitModel`.
"""

import re

import torch

# The official ViTs' heads are 64 wide at every size (ViT-T/S/B/L: 3/6/12/16 heads): the head count, which the
# weights do not hold (a fused qkv projection), follows from the width unless a relative position table gives it.
HEAD_DIM = 64


class StateReader:
    """The tensors of an official state dict, each consumed once.

    `take` returns a tensor and marks it consumed; `drop` consumes keys maskvision has no place for, recording the
    reason; `finish` raises naming every key left. ``source`` names the file in error messages."""

    def __init__(self, state: dict, source: str):
        not_tensors = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
        if not_tensors:
            raise ValueError(f"{source}: {not_tensors[:5]} are not tensors: not a state dict.")
        self.state = dict(state)
        self.total = len(self.state)
        self.source = source
        self.dropped: dict[str, str] = {}

    def __contains__(self, key: str) -> bool:
        return key in self.state

    def keys(self, pattern: str) -> list[str]:
        """The remaining keys matching the regular expression ``pattern`` (from the start of the key)."""
        return [key for key in self.state if re.match(pattern, key)]

    def count(self, pattern: str) -> int:
        """The number of distinct integers captured by ``pattern``'s group among the remaining keys."""
        return len({re.match(pattern, key).group(1) for key in self.keys(pattern)})

    def peek(self, key: str) -> torch.Tensor:
        if key not in self.state:
            raise ValueError(f"{self.source}: key {key!r} is missing: not a checkpoint of the expected layout.")
        return self.state[key]

    def take(self, key: str) -> torch.Tensor:
        tensor = self.peek(key)
        del self.state[key]
        return tensor.float() if tensor.is_floating_point() else tensor

    def take_optional(self, key: str) -> torch.Tensor | None:
        return self.take(key) if key in self.state else None

    def drop(self, pattern: str, reason: str) -> None:
        for key in self.keys(pattern):
            self.dropped[key] = reason
            del self.state[key]

    def finish(self) -> None:
        if self.state:
            left = sorted(self.state)
            raise ValueError(
                f"{self.source}: {len(left)} keys were not converted ({', '.join(left[:8])}"
                f"{', ...' if len(left) > 8 else ''}): not a checkpoint of the expected layout, nothing was written."
            )

    def summary(self) -> list[str]:
        """One line per reason: the dropped keys' patterns (layer indices folded) and why."""
        reasons: dict[str, set[str]] = {}
        for key, reason in self.dropped.items():
            reasons.setdefault(reason, set()).add(re.sub(r"\.\d+(?=\.|$)", ".*", key))
        return [f"dropped {', '.join(sorted(keys))}: {reason}" for reason, keys in reasons.items()]


def strip_prefix(state: dict, prefix: str) -> dict:
    """The state dict with ``prefix`` removed from the keys that have it (DDP's ``module.``)."""
    return {key.removeprefix(prefix): value for key, value in state.items()}


def heads_of(reader: StateReader, prefix: str, hidden_size: int, given: int | None) -> int:
    """The attention head count: given, else the width of a relative position table, else width / 64."""
    if given:
        return given
    tables = reader.keys(rf"{prefix}(rel_pos_bias|blocks\.0\.attn)\.relative_position_bias_table$")
    if tables:
        return reader.peek(tables[0]).shape[1]
    return max(1, hidden_size // HEAD_DIM)


def grid_of_table(rows: int) -> int:
    """The patch grid of a BEiT relative position table with ``rows`` = (2g - 1)² + 3 rows."""
    span = round((rows - 3) ** 0.5)
    if span * span + 3 != rows or span % 2 == 0:
        raise ValueError(f"A relative position table of {rows} rows is not (2g - 1)^2 + 3 for a square grid.")
    return (span + 1) // 2


def vit_block(reader: StateReader, prefix: str, hidden_size: int) -> dict[str, torch.Tensor]:
    """One official ViT block ``{prefix}`` (``norm1``, ``attn.qkv`` with unilm's ``q_bias``/``v_bias`` or timm's
    ``qkv.bias``, ``attn.proj``, ``norm2``, ``mlp.fc1/fc2``, optional ``gamma_1/2`` and relative position table) as
    the tensors of a transformers `BeitLayer` (names relative to the layer). A timm key bias is dropped: it adds the
    same value to every logit of a query, which softmax ignores."""
    layer = {}
    renames = (("norm1", "layernorm_before"), ("norm2", "layernorm_after"), ("attn.proj", "attention.o_proj"),
               ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2"))  # fmt: skip
    for official, ours in renames:
        layer[f"{ours}.weight"] = reader.take(f"{prefix}{official}.weight")
        layer[f"{ours}.bias"] = reader.take(f"{prefix}{official}.bias")
    query, key, value = reader.take(f"{prefix}attn.qkv.weight").split(hidden_size)
    layer.update({"attention.q_proj.weight": query, "attention.k_proj.weight": key, "attention.v_proj.weight": value})
    fused_bias = reader.take_optional(f"{prefix}attn.qkv.bias")
    if fused_bias is not None:
        query_bias, _, value_bias = fused_bias.split(hidden_size)
    else:
        query_bias = reader.take_optional(f"{prefix}attn.q_bias")  # unilm: no key bias
        value_bias = reader.take_optional(f"{prefix}attn.v_bias")
    zeros = torch.zeros(hidden_size)
    layer["attention.q_proj.bias"] = zeros if query_bias is None else query_bias
    layer["attention.v_proj.bias"] = zeros if value_bias is None else value_bias
    for official, ours in (("gamma_1", "lambda_1"), ("gamma_2", "lambda_2")):
        if f"{prefix}{official}" in reader:
            layer[ours] = reader.take(f"{prefix}{official}")
    table = reader.take_optional(f"{prefix}attn.relative_position_bias_table")
    if table is not None:
        layer["relative_position_bias.relative_position_bias_table"] = table
    reader.drop(rf"{re.escape(prefix)}attn\.relative_position_index$", "an index buffer recomputed from the grid")
    return layer


def vit_layers(reader: StateReader, prefix: str, hidden_size: int, target: str = "layers.") -> dict[str, torch.Tensor]:
    """Every block ``{prefix}blocks.N.`` as `BeitModel` tensors ``{target}N.*``."""
    tensors = {}
    for index in range(reader.count(rf"{re.escape(prefix)}blocks\.(\d+)\.")):
        layer = vit_block(reader, f"{prefix}blocks.{index}.", hidden_size)
        tensors.update({f"{target}{index}.{name}": tensor for name, tensor in layer.items()})
    return tensors


def vit_encoder(
    reader: StateReader, prefix: str, num_attention_heads: int | None = None, image_size: int | None = None
) -> tuple[dict, dict[str, torch.Tensor]]:
    """An official ViT encoder under ``prefix`` (patch embedding, [CLS] / [MASK] tokens, absolute position table,
    shared relative position table, blocks, final ``norm`` or ``fc_norm``) as ``(BeitConfig keyword arguments,
    BeitModel tensors)``. ``image_size`` is needed only when no position table tells it."""
    projection = reader.peek(f"{prefix}patch_embed.proj.weight")
    hidden, channels, patch = projection.shape[0], projection.shape[1], projection.shape[-1]
    tensors = {
        "embeddings.patch_embeddings.projection.weight": reader.take(f"{prefix}patch_embed.proj.weight"),
        "embeddings.patch_embeddings.projection.bias": reader.take(f"{prefix}patch_embed.proj.bias"),
    }
    for official, ours in (
        ("cls_token", "cls_token"),
        ("mask_token", "mask_token"),
        ("pos_embed", "position_embeddings"),
    ):
        if f"{prefix}{official}" in reader:
            tensors[f"embeddings.{ours}"] = reader.take(f"{prefix}{official}")
    grids = []
    if "embeddings.position_embeddings" in tensors:
        grids.append(round((tensors["embeddings.position_embeddings"].shape[1] - 1) ** 0.5))
    heads = heads_of(reader, prefix, hidden, num_attention_heads)
    shared = reader.take_optional(f"{prefix}rel_pos_bias.relative_position_bias_table")
    reader.drop(
        rf"{re.escape(prefix)}rel_pos_bias\.relative_position_index$", "an index buffer recomputed from the grid"
    )
    if shared is not None:
        tensors["shared_position_bias.relative_position_bias_table"] = shared
        grids.append(grid_of_table(shared.shape[0]))
    tensors.update(vit_layers(reader, prefix, hidden))
    table = tensors.get("layers.0.relative_position_bias.relative_position_bias_table")
    if table is not None:
        grids.append(grid_of_table(table.shape[0]))
    if grids:
        image_size = grids[0] * patch
    elif image_size is None:
        raise ValueError(f"{reader.source}: no position table tells the image size: give it (--image-size).")
    mean_pooling = f"{prefix}norm.weight" not in reader  # no LayerNorm on every token: fc_norm (or a head's) pools
    for official, ours in (("fc_norm", "pooler.layernorm"), ("norm", "layernorm")):
        if f"{prefix}{official}.weight" in reader:
            tensors[f"{ours}.weight"] = reader.take(f"{prefix}{official}.weight")
            tensors[f"{ours}.bias"] = reader.take(f"{prefix}{official}.bias")
    config = dict(
        hidden_size=hidden,
        num_hidden_layers=reader_layers(tensors),
        num_attention_heads=heads,
        intermediate_size=tensors["layers.0.mlp.fc1.weight"].shape[0],
        patch_size=patch,
        num_channels=channels,
        image_size=image_size,
        layer_norm_eps=1e-6,  # the official norm_layer: partial(nn.LayerNorm, eps=1e-6)
        use_mask_token="embeddings.mask_token" in tensors,
        use_absolute_position_embeddings="embeddings.position_embeddings" in tensors,
        use_shared_relative_position_bias=shared is not None,
        use_relative_position_bias=table is not None,
        layer_scale_init_value=0.1 if "layers.0.lambda_1" in tensors else 0.0,
        use_mean_pooling=mean_pooling,
    )
    return config, tensors


def reader_layers(tensors: dict[str, torch.Tensor]) -> int:
    """The number of Beit layers among converted tensors."""
    return len({name.split(".")[1] for name in tensors if name.startswith("layers.")})


def load_exactly(model, tensors: dict[str, torch.Tensor], source: str, derived: tuple[str, ...] = ()) -> None:
    """Load ``tensors`` into ``model``: every tensor of the model must come from the checkpoint (or be in
    ``derived``, names the conversion leaves to the model), with the model's shape."""
    own = model.state_dict()
    missing = [name for name in own if name not in tensors and not name.startswith(derived)]
    unexpected = [name for name in tensors if name not in own]
    wrong = [
        f"{name} {tuple(tensors[name].shape)} vs {tuple(own[name].shape)}"
        for name in tensors
        if name in own and tensors[name].shape != own[name].shape
    ]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{source}: the converted weights do not fit {type(model).__name__}: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}, shapes {wrong[:5]}."
        )
    model.load_state_dict(tensors, strict=False)


__all__ = [
    "HEAD_DIM", "StateReader", "grid_of_table", "heads_of", "load_exactly", "strip_prefix", "vit_block", "vit_encoder",
    "vit_layers",
]  # fmt: skip
