"""The values the configs' switches accept, without transformers: the pretraining commands offer them as their
flags' choices, and ``maskvision pretrain <method> --help`` imports this module, not the configs themselves
(importing any transformers config lists every model transformers has, about half a second)."""

TARGETS = ("tokens", "pixels")  # BEiT: what the masked patches predict (`BeitMimConfig.target`)
LOSSES = ("byol", "infonce")  # ExtreMA's objectives (`ExtremaConfig.loss`)
HEAD_NORMS = ("batch", "layer")  # MoBY's projector and predictor normalisation (`MobyConfig.head_norm`)
