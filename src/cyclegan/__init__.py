"""cyclegan: CycleGAN, pix2pix, colorization and CUT / FastCUT for PyTorch.

Importing the package registers every recipe, and with it each recipe's config section, so that a
``TrainConfig`` always holds every registered recipe's options.
"""

from cyclegan import recipes  # noqa: F401  (registers the recipes and their config sections)
