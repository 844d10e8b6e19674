"""Data loading: image files, preprocessing, the reference's data set modes and a synthetic set."""

from cyclegan.data.datasets import (
    DATASETS,
    AlignedDataset,
    BaseDataset,
    EpochSampler,
    SingleDataset,
    UnalignedDataset,
    create_dataloader,
    create_dataset,
    epoch_order,
    item_seed,
)
from cyclegan.data.images import (
    IMG_EXTENSIONS,
    BadImageError,
    DatasetError,
    is_image_file,
    list_images,
    load_image,
    scan_images,
    split_aligned,
)
from cyclegan.data.synthetic import (
    PALETTE_A,
    PALETTE_WEIGHTS,
    SYNTHETIC_DEFAULTS,
    synthetic_inverse_map,
    synthetic_map,
    write_synthetic_dataset,
)
from cyclegan.data.transforms import PREPROCESS, get_params, get_transform

__all__ = [
    "DATASETS",
    "IMG_EXTENSIONS",
    "PALETTE_A",
    "PALETTE_WEIGHTS",
    "PREPROCESS",
    "SYNTHETIC_DEFAULTS",
    "AlignedDataset",
    "BadImageError",
    "BaseDataset",
    "DatasetError",
    "EpochSampler",
    "SingleDataset",
    "UnalignedDataset",
    "create_dataloader",
    "create_dataset",
    "epoch_order",
    "get_params",
    "get_transform",
    "is_image_file",
    "item_seed",
    "list_images",
    "load_image",
    "scan_images",
    "split_aligned",
    "synthetic_inverse_map",
    "synthetic_map",
    "write_synthetic_dataset",
]
