"""recipes/cycle_gan."""
