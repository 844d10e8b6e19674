"""Image-quality metrics for paired outputs: PSNR and SSIM, and the folder evaluation behind ``cyclegan eval``."""

from cyclegan.metrics.evaluate import (
    PSNR_CAP_DB,
    evaluate_folders,
    format_table,
    split_label,
    to_json,
)
from cyclegan.metrics.paired import psnr, ssim

__all__ = [
    "PSNR_CAP_DB",
    "evaluate_folders",
    "format_table",
    "psnr",
    "split_label",
    "ssim",
    "to_json",
]
