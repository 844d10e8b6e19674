"""cyclegan: CycleGAN, pix2pix, colorization and CUT / FastCUT for PyTorch.

Importing the package registers every recipe, and with it each recipe's config section, so that a
``TrainConfig`` always holds every registered recipe's options.
"""

import os

# Before torch is imported (it reads this once): tensors of 2 MB and more on transparent huge pages,
# so they take far fewer page faults (tiled translation of large photos spends much of its time there
# without it; benchmarks/README.md). A value the user set is kept.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from cyclegan import recipes  # noqa: E402, F401  (registers the recipes and their config sections)
