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

FID is ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))`` with unbiased (N-1) covariances.
With fewer samples than feature dimensions (2048) the covariance is rank-deficient and FID is biased
upwards; compare FIDs only at equal sample counts (reported in ``fid_samples``). KID (Bińkowski et
al. 2018) is the unbiased MMD² with the cubic polynomial kernel ``k(x, y) = (x·y / d + 1)^3``,
averaged over random subsets as clean-fid and torch-fidelity do; it is unbiased at any sample count.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from cyclegan.download import INCEPTION_FILENAME, inception_cache_path

__all__ = [
    "FEATURE_DIM",
    "INCEPTION_SIZE",
    "InceptionFeatures",
    "InceptionWeightsMissing",
    "clean_resize",
    "feature_statistics",
    "fid_kid_folders",
    "fid_kid_from_features",
    "folder_features",
    "frechet_distance",
    "frechet_distance_features",
    "kernel_inception_distance",
    "quantize",
    "resolve_inception_weights",
    "sqrtm_psd",
]

INCEPTION_SIZE = 299
FEATURE_DIM = 2048


class InceptionWeightsMissing(FileNotFoundError):
    """The Inception-v3 weights for FID / KID are not on disk; the message says how to get them."""


# ----------------------------------------------------------------------------------- statistics


def sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix, by eigen-decomposition (float64).

    Eigenvalues that rounding made slightly negative are clipped to 0, so the result is real and
    symmetric (``scipy.linalg.sqrtm`` on such a matrix returns tiny imaginary parts instead).
    """
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {a.shape}")
    a = (a + a.T) / 2.0  # remove asymmetry left by floating-point covariance sums
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(_clip_noise(w))) @ v.T


def _clip_noise(w: np.ndarray) -> np.ndarray:
    """Set eigenvalues within rounding noise of 0 to exactly 0 (numpy.linalg.matrix_rank's tolerance).

    A covariance of N < D samples has D - N + 1 zero eigenvalues that come out as +-1e-15; their
    square roots (~3e-8 each) would otherwise add up to a visible error in the FID trace term.
    """
    tol = max(float(np.max(np.abs(w), initial=0.0)), 0.0) * w.size * np.finfo(np.float64).eps
    return np.where(w > tol, w, 0.0)


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased (N-1) covariance of ``(N, D)`` features, float64, as clean-fid's ``np.cov``."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors of shape (N, D), got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    ``|mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))``. The trace term is
    computed as ``tr((sqrt(S1) S2 sqrt(S1))^(1/2))``: the same eigenvalues as ``S1 S2`` but of a
    symmetric PSD matrix, so there are no imaginary parts to discard (``scipy.linalg.sqrtm(S1 @ S2)``
    gives small ones for singular covariances, which is why FID code strips them) and no ``eps``
    offset is needed when a covariance is singular. Negative rounding noise is clipped to 0, and a
    result of ``-1e-12`` is returned as 0.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} / {mu2.shape}, sigma {s1.shape} / {s2.shape}")
    root1 = sqrtm_psd(s1)
    middle = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    tr_covmean = float(np.sqrt(_clip_noise(eig)).sum())
    diff = mu1 - mu2
    fid = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    return max(fid, 0.0)


def frechet_distance_features(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """FID between two ``(N, D)`` feature sets; equal to :func:`frechet_distance` of their statistics.

    With ``N`` below ``D`` (fewer than 2048 images) the ``D x D`` route spends seconds on a 2048-wide
    eigen-decomposition of a matrix of rank ``N - 1``. Here, with centred features ``A1``, ``A2``:
    ``S1 S2 = A1' (A1 A2') A2 / c``, whose non-zero eigenvalues are those of ``M M'`` with
    ``M = A1 A2' / sqrt(c)``, ``c = (N1 - 1)(N2 - 1)``, so ``tr((S1 S2)^(1/2))`` is the sum of the
    singular values of the small ``N1 x N2`` matrix ``M``. Exact, not an approximation; used when
    ``M`` is no larger than a covariance matrix, else the covariance route.
    """
    f1 = np.asarray(feats1, dtype=np.float64)
    f2 = np.asarray(feats2, dtype=np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1] or min(len(f1), len(f2)) < 2:
        raise ValueError(f"need (N, D) and (M, D) feature sets with N, M >= 2, got {f1.shape} and {f2.shape}")
    n1, n2, d = len(f1), len(f2), f1.shape[1]
    if n1 * n2 > d * d:
        mu1, s1 = feature_statistics(f1)
        mu2, s2 = feature_statistics(f2)
        return frechet_distance(mu1, s1, mu2, s2)
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    a1, a2 = f1 - mu1, f2 - mu2
    tr1 = float(np.sum(a1 * a1)) / (n1 - 1)
    tr2 = float(np.sum(a2 * a2)) / (n2 - 1)
    m = (a1 @ a2.T) / np.sqrt((n1 - 1) * (n2 - 1))
    tr_covmean = float(np.linalg.svd(m, compute_uv=False).sum())
    diff = mu1 - mu2
    return max(float(diff @ diff + tr1 + tr2 - 2.0 * tr_covmean), 0.0)


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with k(a, b) = (a·b / d + 1)^3 between equal-sized sets x, y of shape (m, d)."""
    m, d = x.shape
    kxx = (x @ x.T / d + 1.0) ** 3
    kyy = (y @ y.T / d + 1.0) ** 3
    kxy = (x @ y.T / d + 1.0) ** 3
    # Diagonal (k(x_i, x_i)) terms excluded from the within-set sums: that is what makes it unbiased.
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2.0 * kxy.sum() / (m * m))


def kernel_inception_distance(
    feats1: np.ndarray, feats2: np.ndarray, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID: mean and standard deviation over ``num_subsets`` random subsets of the unbiased MMD².

    Each subset draws ``m = min(subset_size, len(feats1), len(feats2))`` rows of each set without
    replacement (``numpy.random.default_rng(seed)``, so the result is reproducible); the kernel is
    ``(x·y / d + 1)^3`` (Bińkowski et al. 2018, clean-fid's ``kernel_distance``, torch-fidelity's
    ``kid``). The std is the population std of the subset values (as torch-fidelity reports it).
    """
    x_all = np.asarray(feats1, dtype=np.float64)
    y_all = np.asarray(feats2, dtype=np.float64)
    if x_all.ndim != 2 or y_all.ndim != 2 or x_all.shape[1] != y_all.shape[1]:
        raise ValueError(f"expected (N, D) and (M, D) features, got {x_all.shape} and {y_all.shape}")
    m = min(int(subset_size), x_all.shape[0], y_all.shape[0])
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples in each set, got {x_all.shape[0]} and {y_all.shape[0]}")
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be >= 1, got {num_subsets}")
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets, dtype=np.float64)
    for i in range(num_subsets):
        x = x_all[rng.choice(x_all.shape[0], m, replace=False)]
        y = y_all[rng.choice(y_all.shape[0], m, replace=False)]
        values[i] = _mmd2_unbiased(x, y)
    return float(values.mean()), float(values.std())


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


def _candidate_weight_paths() -> list[Path]:
    paths = [inception_cache_path()]
    # A torch-fidelity / pytorch-fid user may already have the same file in torch.hub's cache.
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    paths += [hub / "weights-inception-2015-12-05-6726825d.pth", hub / INCEPTION_FILENAME]
    return paths


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
    for path in _candidate_weight_paths():
        if path.is_file():
            return path
    target = inception_cache_path()
    raise InceptionWeightsMissing(
        "FID/KID need the Inception-v3 weights, which are not downloaded automatically.\n"
        f"  Run `cyclegan download inception` once (it saves them to {target}),\n"
        f"  or copy {INCEPTION_FILENAME} (torch-fidelity's weights-inception-2015-12-05-6726825d.pth) to {target},\n"
        "  or pass --inception_weights PATH. Set CYCLEGAN_CACHE to use another cache folder."
    )


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types; all mean "not usable weights"
        raise ValueError(
            f"{path}: cannot read Inception weights with torch.load(weights_only=True) "
            f"({str(error).splitlines()[0] if str(error) else type(error).__name__})"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: not a state dict of tensors")
    return dict(state)


class InceptionFeatures:
    """2048-d Inception-v3 pool3 features of ``uint8`` images, with clean-fid's resize.

    ``InceptionFeatures(weights_path=None, device="cpu")``; calling it with ``uint8`` images
    (a ``(N, 3, H, W)`` tensor or a list of ``(3, H, W)`` tensors of any sizes) returns a float64
    ``(N, 2048)`` numpy array.
    """

    def __init__(self, weights_path: str | Path | None = None, device: str | torch.device = "cpu") -> None:
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError as error:
            raise ImportError(
                "FID/KID need the torch-fidelity package: pip install torch-fidelity"
            ) from error
        self.weights_path = resolve_inception_weights(weights_path)
        state = _load_weights(self.weights_path)
        # torch-fidelity's constructor unpickles its path with weights_only=False; hand it a buffer
        # re-serialised from the weights-only load instead, so no code in a file can ever run.
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        try:
            net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=buffer)
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
    from cyclegan.metrics.evaluate import IMAGE_EXTENSIONS, load_image

    if isinstance(folder, (str, Path)):
        root = Path(folder)
        if not root.is_dir():
            raise NotADirectoryError(f"not a folder: {root}")
        files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {root}")
    else:
        files = [Path(p) for p in folder]
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    from tqdm.auto import tqdm

    chunks = []
    starts = range(0, len(files), batch_size)
    for start in tqdm(starts, desc="inception", unit="batch", disable=not progress, leave=False):
        chunks.append(extractor([load_image(p) for p in files[start : start + batch_size]]))
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
