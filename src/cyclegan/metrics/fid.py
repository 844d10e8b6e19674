"""FID and KID computed the "clean" way (Parmar, Zhang and Zhu, "On Aliased Resizing and Surprising
Subtleties in GAN Evaluation", CVPR 2022 — the clean-fid paper).

What "clean" means here, step by step:

1. Quantisation: every image is 8-bit before anything else. Files are read as RGB ``uint8``;
   generated tensors in [-1, 1] are first rounded to ``uint8`` with :func:`quantize` (the same
   rounding as the PNGs the report writes), so a tensor and its saved PNG give the same features.
2. Resizing: each ``uint8`` image is converted to float32 and resized to 299×299 per channel with
   PIL's bicubic filter in ``"F"`` mode — an anti-aliased filter (its support widens with the
   downscale factor), with no re-quantisation after the resize. This is clean-fid's ``"clean"`` mode
   (``make_resizer("PIL", quantize_after=False, "bicubic", (299, 299))``). The usual
   ``F.interpolate(bilinear)`` inside FID code aliases badly when shrinking (it samples 4 pixels
   whatever the scale), which is why torch-fidelity's own resize is bypassed (see below).
3. Features: the standard FID network, TensorFlow's 2015-12-05 Inception-v3 as ported to PyTorch by
   torch-fidelity (``FeatureExtractorInceptionV3``), 2048-d pool3 features, input scaled with
   ``(x - 128) / 128`` as the TF graph does.

torch-fidelity's ``forward`` only takes ``uint8`` input and resizes it with a TF1-style bilinear
interpolation; :class:`InceptionFeatures` runs the same layers on the already clean-resized float
images instead (at 299×299 that bilinear step is the identity, which a test checks).

The weights are never downloaded here: pass a path (``--inception_weights``) or fill the cache once
with ``cyclegan download inception`` (``~/.cache/cyclegan/inception/...``, ``$CYCLEGAN_CACHE``).
They are read with ``torch.load(weights_only=True)``.

The statistics are torch-fidelity's metric functions (``fid_features_to_statistics`` /
``fid_statistics_to_metric``, ``kernel_mmd``); the two places where ours remain say why.
FID is ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))`` with unbiased (N-1) covariances.
With fewer samples than feature dimensions (2048) the covariance is rank-deficient and FID is biased
upwards; compare FIDs only at equal sample counts (reported in ``fid_samples``). KID (Bińkowski et
al. 2018) is the unbiased MMD² with the cubic polynomial kernel ``k(x, y) = (x·y / d + 1)^3``,
averaged over random subsets as clean-fid and torch-fidelity do; it is unbiased at any sample count.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from cyclegan.core.download import INCEPTION_FILENAME, inception_cache_path
from cyclegan.core.fileio import load_tensor_dict
from cyclegan.data.images import IMG_EXTENSIONS, is_image_file, load_image

__all__ = [
    "FEATURE_DIM",
    "INCEPTION_SIZE",
    "InceptionFeatures",
    "InceptionWeightsMissing",
    "clean_resize",
    "fid_kid_folders",
    "fid_kid_from_features",
    "folder_features",
    "frechet_distance_features",
    "kernel_inception_distance",
    "quantize",
    "resolve_inception_weights",
]

INCEPTION_SIZE = 299
FEATURE_DIM = 2048


class InceptionWeightsMissing(FileNotFoundError):
    """The Inception-v3 weights for FID / KID are not on disk; the message says how to get them."""


def _torch_fidelity(module: str) -> Any:
    """``torch_fidelity.<module>``: an optional dependency (the ``fid`` extra), imported when first used."""
    try:
        return importlib.import_module(f"torch_fidelity.{module}")
    except ImportError as error:
        raise ImportError(
            "FID/KID need the torch-fidelity package: pip install 'cyclegan[fid]' (or torch-fidelity)"
        ) from error


# ----------------------------------------------------------------------------------- statistics


def frechet_distance_features(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """FID between two ``(N, D)`` feature sets (torch-fidelity's statistics: mean, ``np.cov``).

    With ``N1 * N2`` above ``D * D`` this is torch-fidelity's ``fid_statistics_to_metric``. Below, ours:
    there its eigenvalues of the ``D x D`` product ``S1 S2`` (seconds at D = 2048) turn the rounding
    noise of the rank-deficient covariances into an error of order 1e-3, even for identical sets.
    With centred features ``A1``, ``A2``, ``S1 S2 = A1' (A1 A2') A2 / c``, ``c = (N1 - 1)(N2 - 1)``, whose
    non-zero eigenvalues are those of ``M M'`` with ``M = A1 A2' / sqrt(c)``: ``tr((S1 S2)^(1/2))`` is
    the sum of the singular values of the small ``N1 x N2`` matrix ``M`` (exact, not an approximation).
    """
    metric_fid = _torch_fidelity("metric_fid")
    f1 = np.asarray(feats1, dtype=np.float64)
    f2 = np.asarray(feats2, dtype=np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1] or min(len(f1), len(f2)) < 2:
        raise ValueError(f"need (N, D) and (M, D) feature sets with N, M >= 2, got {f1.shape} and {f2.shape}")
    n1, n2, d = len(f1), len(f2), f1.shape[1]
    if n1 * n2 > d * d:
        stats = [metric_fid.fid_features_to_statistics(torch.from_numpy(f)) for f in (f1, f2)]
        return max(metric_fid.fid_statistics_to_metric(*stats, verbose=False)[metric_fid.KEY_METRIC_FID], 0.0)
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    a1, a2 = f1 - mu1, f2 - mu2
    tr1 = float(np.sum(a1 * a1)) / (n1 - 1)
    tr2 = float(np.sum(a2 * a2)) / (n2 - 1)
    m = (a1 @ a2.T) / np.sqrt((n1 - 1) * (n2 - 1))
    tr_covmean = float(np.linalg.svd(m, compute_uv=False).sum())
    diff = mu1 - mu2
    return max(float(diff @ diff + tr1 + tr2 - 2.0 * tr_covmean), 0.0)


def kernel_inception_distance(
    feats1: np.ndarray, feats2: np.ndarray, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID: mean and population std over ``num_subsets`` random subsets of torch-fidelity's unbiased MMD²
    (``kernel_mmd``, kernel ``(x·y / d + 1)^3``).

    Each subset draws ``m = min(subset_size, len(feats1), len(feats2))`` rows of each set without
    replacement with ``numpy.random.default_rng(seed)``. The draw loop is ours: torch-fidelity's
    (``kid_features_to_metric``) refuses sets smaller than the subset size and draws with another
    generator, which would change every reported KID.
    """
    kernel_mmd = _torch_fidelity("metric_kid").kernel_mmd
    x_all, y_all = np.asarray(feats1, dtype=np.float64), np.asarray(feats2, dtype=np.float64)
    if x_all.ndim != 2 or y_all.ndim != 2 or x_all.shape[1] != y_all.shape[1]:
        raise ValueError(f"expected (N, D) and (M, D) features, got {x_all.shape} and {y_all.shape}")
    m = min(int(subset_size), len(x_all), len(y_all))
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples in each set, got {len(x_all)} and {len(y_all)}")
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be >= 1, got {num_subsets}")
    rng = np.random.default_rng(seed)
    values = [
        kernel_mmd(x_all[rng.choice(len(x_all), m, replace=False)], y_all[rng.choice(len(y_all), m, replace=False)])
        for _ in range(num_subsets)
    ]
    return float(np.mean(values)), float(np.std(values))


# ------------------------------------------------------------------------------------- images


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] -> ``uint8`` in [0, 255], rounded as the saved PNGs are.

    The same mapping as :func:`cyclegan.report.visuals.tensor_to_image` (``x * 255 + 0.5``,
    truncated), so scoring a tensor and scoring its PNG give the same features.
    """
    if images.dtype == torch.uint8:
        return images
    x = (images.detach().to("cpu", torch.float32) + 1.0) / 2.0
    return x.clamp(0.0, 1.0).mul(255.0).add(0.5).clamp(0.0, 255.0).to(torch.uint8)


def clean_resize(image: torch.Tensor | np.ndarray, size: int = INCEPTION_SIZE) -> np.ndarray:
    """clean-fid's "clean" resize of one ``uint8`` image: ``(3, H, W)`` -> float32 ``(3, size, size)``.

    Each channel becomes a PIL ``"F"`` (float32) image and is resized with ``BICUBIC`` (anti-aliased
    when shrinking), clipped to [0, 255] and not rounded again.
    """
    arr = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.dtype != np.uint8:
        raise TypeError(f"clean_resize expects uint8 images (quantize generated tensors first), got {arr.dtype}")
    if arr.ndim != 3 or arr.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) image, got shape {arr.shape}")
    out = np.empty((3, size, size), dtype=np.float32)
    for c in range(3):
        channel = Image.fromarray(arr[c].astype(np.float32))  # 2-D float32 -> mode "F"
        resized = channel.resize((size, size), resample=Image.Resampling.BICUBIC)
        out[c] = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 255.0)
    return out


def resolve_inception_weights(weights_path: str | Path | None = None) -> Path:
    """The weights file to use: ``weights_path`` if given, else the first present of the cache
    (``$CYCLEGAN_CACHE/inception/...`` or ``~/.cache/cyclegan/inception/...``) and torch.hub's cache.

    Raises :class:`InceptionWeightsMissing` with instructions when there is none.
    """
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise InceptionWeightsMissing(
                f"Inception weights not found at {path} (from --inception_weights). Get them with "
                f"`cyclegan download inception` or copy {INCEPTION_FILENAME} there."
            )
        return path
    # A torch-fidelity / pytorch-fid user may already have the same file in torch.hub's cache.
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    for path in (inception_cache_path(), hub / "weights-inception-2015-12-05-6726825d.pth", hub / INCEPTION_FILENAME):
        if path.is_file():
            return path
    target = inception_cache_path()
    raise InceptionWeightsMissing(
        "FID/KID need the Inception-v3 weights, which are not downloaded automatically.\n"
        f"  Run `cyclegan download inception` once (it saves them to {target}),\n"
        f"  or copy {INCEPTION_FILENAME} (torch-fidelity's weights-inception-2015-12-05-6726825d.pth) to {target},\n"
        "  or pass --inception_weights PATH. Set CYCLEGAN_CACHE to use another cache folder."
    )


class InceptionFeatures:
    """2048-d Inception-v3 pool3 features of ``uint8`` images, with clean-fid's resize.

    ``InceptionFeatures(weights_path=None, device="cpu")``; calling it with ``uint8`` images
    (a ``(N, 3, H, W)`` tensor or a list of ``(3, H, W)`` tensors of any sizes) returns a float64
    ``(N, 2048)`` numpy array.
    """

    def __init__(self, weights_path: str | Path | None = None, device: str | torch.device = "cpu") -> None:
        inception = _torch_fidelity("feature_extractor_inceptionv3")
        self.weights_path = resolve_inception_weights(weights_path)
        state = load_tensor_dict(self.weights_path, "Inception weights")
        # torch-fidelity's constructor unpickles its path with weights_only=False; hand it a buffer
        # re-serialised from the weights-only load instead, so no code in a file can ever run.
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        try:
            net = inception.FeatureExtractorInceptionV3(
                "inception-v3-compat", ["2048"], feature_extractor_weights_path=buffer
            )
        except RuntimeError as error:
            raise ValueError(
                f"{self.weights_path}: not the FID Inception-v3 weights torch-fidelity expects "
                f"({str(error).splitlines()[0]})"
            ) from None
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()

    @torch.no_grad()
    def _pool3(self, x: torch.Tensor) -> torch.Tensor:
        """torch-fidelity's forward after its resize: float [0, 255] (N, 3, 299, 299) -> (N, 2048)."""
        n = self.net
        x = (x - 128.0) / 128.0
        for layer in (
            n.Conv2d_1a_3x3, n.Conv2d_2a_3x3, n.Conv2d_2b_3x3, n.MaxPool_1, n.Conv2d_3b_1x1, n.Conv2d_4a_3x3,
            n.MaxPool_2, n.Mixed_5b, n.Mixed_5c, n.Mixed_5d, n.Mixed_6a, n.Mixed_6b, n.Mixed_6c, n.Mixed_6d,
            n.Mixed_6e, n.Mixed_7a, n.Mixed_7b, n.Mixed_7c, n.AvgPool,
        ):
            x = layer(x)
        return torch.flatten(x, 1)

    def __call__(self, images: torch.Tensor | Sequence[torch.Tensor]) -> np.ndarray:
        if isinstance(images, torch.Tensor):
            if images.dim() != 4 or images.shape[1] != 3:
                raise ValueError(f"expected uint8 images (N, 3, H, W), got shape {tuple(images.shape)}")
            images = list(images)
        if not images:
            return np.zeros((0, FEATURE_DIM), dtype=np.float64)
        batch = np.stack([clean_resize(img.cpu() if isinstance(img, torch.Tensor) else img) for img in images])
        x = torch.from_numpy(batch).to(self.device)
        return self._pool3(x).to("cpu", torch.float64).numpy()


# -------------------------------------------------------------------------------------- folders


def folder_features(
    folder: str | Path | Sequence[str | Path],
    extractor: InceptionFeatures,
    batch_size: int = 16,
    progress: bool = False,
) -> np.ndarray:
    """Features of every image in ``folder`` (a folder, or an explicit list of image files), sorted by name.

    Returns float64 ``(N, 2048)``. Images are read as RGB ``uint8`` by the data loader's rules
    (EXIF orientation, 16-bit, palette, CMYK, alpha; see :func:`cyclegan.data.load_image`).
    """
    from torchvision.transforms.v2.functional import to_image

    if isinstance(folder, (str, Path)):
        root = Path(folder)
        if not root.is_dir():
            raise NotADirectoryError(f"not a folder: {root}")
        files = sorted(p for p in root.iterdir() if p.is_file() and is_image_file(p))
        if not files:
            raise ValueError(f"no images ({', '.join(IMG_EXTENSIONS)}) in {root}")
    else:
        files = [Path(p) for p in folder]
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    from tqdm.auto import tqdm

    chunks = []
    starts = range(0, len(files), batch_size)
    for start in tqdm(starts, desc="inception", unit="batch", disable=not progress, leave=False):
        chunks.append(extractor([to_image(load_image(p, 3)) for p in files[start : start + batch_size]]))
    return np.concatenate(chunks) if chunks else np.zeros((0, FEATURE_DIM), dtype=np.float64)


def fid_kid_from_features(
    real: np.ndarray, fake: np.ndarray, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """FID and KID between two feature sets; the dict layout of :func:`fid_kid_folders`."""
    if len(real) < 2 or len(fake) < 2:
        raise ValueError(f"FID/KID need at least 2 images on each side, got {len(real)} real and {len(fake)} fake")
    kid, kid_std = kernel_inception_distance(real, fake, num_subsets=num_subsets, subset_size=subset_size, seed=seed)
    return {
        "fid": frechet_distance_features(real, fake),
        "kid": kid,
        "kid_std": kid_std,
        "fid_samples": {"real": int(len(real)), "fake": int(len(fake))},
        "kid_subset_size": int(min(subset_size, len(real), len(fake))),
        "kid_subsets": int(num_subsets),
    }


def fid_kid_folders(
    real_dir: str | Path | Sequence[str | Path],
    fake_dir: str | Path | Sequence[str | Path],
    weights_path: str | Path | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 16,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
    extractor: InceptionFeatures | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """FID and KID between all images of ``real_dir`` and all of ``fake_dir`` (no pairing).

    Returns ``{"fid": float, "kid": float, "kid_std": float, "fid_samples": {"real": N, "fake": M},
    "kid_subset_size": m, "kid_subsets": 100}``. Either argument may also be a list of image files.
    ``extractor`` reuses an already loaded :class:`InceptionFeatures` (loading takes seconds);
    ``progress`` shows a tqdm bar per folder.
    """
    if extractor is None:
        extractor = InceptionFeatures(weights_path, device)
    real = folder_features(real_dir, extractor, batch_size, progress=progress)
    fake = folder_features(fake_dir, extractor, batch_size, progress=progress)
    return fid_kid_from_features(real, fake, num_subsets=num_subsets, subset_size=subset_size, seed=seed)
