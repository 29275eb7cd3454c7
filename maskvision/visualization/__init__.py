"""Pictures of what a method trains on and what a model learned, each a PNG written by a command.

- `preview`: the views and masks a pretraining method trains on, through its recipe's collator (``maskvision
  preview``; the demo's ``preview`` stage).
- `beit`: what a BEiT checkpoint predicts behind its masks, decoded to pixels (``maskvision visualize beit``).
- `encoder`: the [CLS] attention of the last layer per head, and a PCA of the patch features in RGB, for any ViT-like
  encoder (``maskvision visualize attention|pca``).
- `curves`: a run's logged scalars (loss, learning rate, each method's health figures), written at the end of every
  run and embedded in its model card (``maskvision visualize curves``). matplotlib, the optional ``plots`` extra.
- `images`: the titled image grids the other modules draw with (PIL only).

Layers: `curves` and `images` import nothing from maskvision (the run flows in ``training/`` call `curves`); the
other modules sit above ``training/`` and ``evaluation/``, whose collators, recipes and encoders they use. This
package's ``__init__`` imports none of them, so that importing `curves` stays light.
"""
