"""Full-reference metrics on paired image tensors: PSNR and SSIM.

Both take tensors with values in ``[0, data_range]`` shaped ``(N, C, H, W)`` or ``(C, H, W)`` and
return one value per image (a ``(N,)`` float64 tensor, or a 0-dim tensor for a single ``(C, H, W)``
image). They are pure functions: no state, no device or dtype changes to the inputs.

:func:`psnr` (identical images give ``inf``: folder means cap it at :data:`PSNR_CAP_DB`) and
:func:`ssim` (what skimage's ``structural_similarity`` with Gaussian weights returns) say how.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["PSNR_CAP_DB", "gaussian_window_1d", "psnr", "ssim"]

# Identical images have infinite PSNR; folder means use min(psnr, 100 dB) so that one perfect copy
# does not turn the mean into inf (100 dB is an MSE of 1e-10, far below 8-bit quantisation noise).
PSNR_CAP_DB = 100.0

SSIM_WIN_SIZE = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _as_batch(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Check shapes and return both as float64 (N, C, H, W) plus whether the input was one image."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"expected torch tensors, got {type(x).__name__} and {type(y).__name__}")
    if x.shape != y.shape:
        raise ValueError(f"images must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() not in (3, 4):
        raise ValueError(f"expected (N, C, H, W) or (C, H, W) tensors, got shape {tuple(x.shape)}")
    single = x.dim() == 3
    if single:
        x, y = x.unsqueeze(0), y.unsqueeze(0)
    # float64 because SSIM subtracts nearly equal numbers (E[x^2] - E[x]^2); float32 loses ~1e-4.
    return x.detach().to(torch.float64), y.detach().to(torch.float64), single


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, one value per image.

    ``10 * log10(data_range**2 / mse)`` where ``mse`` is the mean over all pixels and channels of
    one image. Identical images give ``inf`` (reported as such here; folder means cap it at 100 dB,
    see :func:`cyclegan.metrics.evaluate.evaluate_folders`).

    Returns a float64 tensor of shape ``(N,)`` for batched input, or a 0-dim tensor for ``(C, H, W)``.
    """
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    xb, yb, single = _as_batch(x, y)
    mse = (xb - yb).pow(2).flatten(1).mean(dim=1)
    # mse == 0 -> division gives +inf and log10(inf) = inf, which is the intended value.
    with torch.no_grad():
        out = 10.0 * torch.log10(data_range**2 / mse)
    return out[0] if single else out


def gaussian_window_1d(win_size: int = SSIM_WIN_SIZE, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised 1-D Gaussian taps (float64), centred, ``win_size`` long.

    The 2-D SSIM window is the outer product of this with itself; scipy's ``gaussian_filter`` with
    ``truncate=3.5`` (what skimage uses) gives exactly these 11 taps for sigma 1.5.
    """
    if win_size % 2 != 1 or win_size < 1:
        raise ValueError(f"win_size must be a positive odd number, got {win_size}")
    half = win_size // 2
    coords = torch.arange(-half, half + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (coords / sigma) ** 2)
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004), one value per image.

    11x11 Gaussian window with sigma 1.5, K1=0.01, K2=0.03, population covariances; the SSIM map is
    computed per channel over the valid region only (positions where the whole window fits inside
    the image, i.e. a 5-pixel border is excluded) and averaged over that region and the channels.
    Matches ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=data_range)``.

    Images must be at least 11x11. Returns float64, shape ``(N,)`` or 0-dim for ``(C, H, W)`` input.
    """
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    xb, yb, single = _as_batch(x, y)
    n, c, h, w = xb.shape
    if h < SSIM_WIN_SIZE or w < SSIM_WIN_SIZE:
        raise ValueError(f"SSIM needs images of at least {SSIM_WIN_SIZE}x{SSIM_WIN_SIZE} pixels, got {h}x{w}")

    g = gaussian_window_1d(SSIM_WIN_SIZE, SSIM_SIGMA).to(xb.device)
    # Filter the five moment maps in one grouped convolution: 5*C channels, each with its own copy of
    # the (separable) window. No padding, so the output is exactly the valid region.
    stack = torch.cat([xb, yb, xb * xb, yb * yb, xb * yb], dim=1)
    groups = stack.shape[1]
    kh = g.view(1, 1, -1, 1).expand(groups, 1, -1, 1).contiguous()
    kw = g.view(1, 1, 1, -1).expand(groups, 1, 1, -1).contiguous()
    with torch.no_grad():
        filt = F.conv2d(F.conv2d(stack, kh, groups=groups), kw, groups=groups)
    mu_x, mu_y, e_xx, e_yy, e_xy = filt.split(c, dim=1)

    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    var_x = e_xx - mu_x * mu_x
    var_y = e_yy - mu_y * mu_y
    cov_xy = e_xy - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    # Mean over the valid map of each channel, then over channels == mean over (C, H', W').
    out = (num / den).flatten(1).mean(dim=1)
    return out[0] if single else out
