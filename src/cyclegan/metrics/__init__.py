"""Image-quality metrics: paired PSNR, SSIM and LPIPS (:mod:`cyclegan.metrics.lpips`, imported on use,
weights on disk), unpaired FID and KID (clean-fid style, in :mod:`cyclegan.metrics.fid`, imported on use),
and the folder evaluation behind ``cyclegan eval``."""

from cyclegan.metrics.evaluate import (
    DEFAULT_METRICS,
    DISTRIBUTION_METRICS,
    PAIRED_METRICS,
    PSNR_CAP_DB,
    evaluate_folders,
    format_table,
    split_label,
    to_json,
)
from cyclegan.metrics.paired import psnr, ssim

__all__ = [
    "DEFAULT_METRICS",
    "DISTRIBUTION_METRICS",
    "PAIRED_METRICS",
    "PSNR_CAP_DB",
    "evaluate_folders",
    "format_table",
    "psnr",
    "split_label",
    "ssim",
    "to_json",
]
