"""recipes/pix2pix."""
