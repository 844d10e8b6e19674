"""recipes/colorization: pix2pix from L to ab in Lab colour (the reference's ``--model colorization``),
with its data set mode and its Lab codec."""
