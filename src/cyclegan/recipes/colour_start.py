"""Start a generator's colour branch at a colour map that carries one domain's palette onto the other's.

A generator that starts as the identity learns colour maps near it (a tint, a grade) slowly and maps
far from it (channel swaps, hue rotations, negatives) hardly at all in a short run: the adversarial
signal about colour is coarse, and the first steps spend it on texture. Before training, this fits the
generator's per-pixel colour branch (``--colour_branch``, :class:`cyclegan.networks.generators.
PointwiseColourMap`) so that the colours of G(A) follow the colours of B: a sliced Wasserstein fit
(:func:`cyclegan.losses.colour_distribution_loss`) on the pixels of the run's first :data:`FIT_IMAGES`
pictures of each domain.

Matching colour distributions alone has many answers, and a descent from the identity finds the
nearest, which is wrong for far maps. So the fit starts from the identity, from the one of the 48
signed channel permutations (the symmetries of the RGB cube; a hue rotation by 120 or 240 degrees is
one) that brings A's colours closest to B's and from the closest that negates no channel (each set as
the skip's channel mix, ``PointwiseColourMap.mix``, so the start is the permutation exactly), and from
per-channel histogram matching (a grey domain has no channels to permute: its three identical channels
go through three different curves, which c is first fitted to reach), and keeps the one that ends
closest, but the identity unless another ends clearly closer (:data:`ACCEPT_RATIO`): a map near the
identity stays near it. From a grey domain into a colour one, histogram matching takes the identity's
place; into a grey domain the identity is the only start. CycleGAN then makes its two generators'
permutations each other's inverse (``CycleGANModel.fit_colour_starts``). Where the domains differ in
texture, which no colour map gives (``texture_verdict``), CycleGAN puts the fitted branches back to the
identity. Training then refines the map and lets the convolutional body learn what a colour map cannot.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cyclegan.losses import (
    pixel_cloud,
    quantile_distance,
    sliced_wasserstein,
    sorted_projections,
    sphere_directions,
)

# Another start replaces the identity only when its fit ends this much closer to B's colours: the
# identity's fit is the right answer for maps near it, and two fits can end a little apart by chance.
ACCEPT_RATIO = 0.8
# Signed permutations fitted besides the identity: the closest to B's colours before fitting. Once the
# permutation is exact, fits from wrong ones warp to within noise of the right one's (invert seed 1, a
# small branch: the negative with g and b swapped ended as close as the negative, 0.0069), while before
# fitting the right one stands out (0.0104 against 0.09 and more).
CANDIDATES = 1
SAMPLE_PIXELS = 4096  # pixels per fitting step, per domain
DIRECTIONS = 32  # projections of the sliced Wasserstein distance
LEARNING_RATE = 3e-3
# Pictures per domain the fit sees (the recipes' first batch). Their colour clusters' frequencies are
# what tells the right palette map from its look-alikes; on 16 a negative's fit lost to a channel swap
# whose fit ended closer to those 16 pictures' colours (benchmarks/README.md).
FIT_IMAGES = 64
# Domains whose pixel colours lie farther apart than this (colour_distance) are a map far from the
# identity. Measured on benchmarks/learning_suite.py's task family, first batches: the near maps (tint,
# film look, photographs' grade, stripes, one object recoloured) lie at most 0.15 apart, the far ones
# (grey <-> colour, channel rotations, a hue rotation, a negative) at least 0.32.
FAR_MAP_DISTANCE = 0.25
# Domains whose fine detail differs by more than this factor once each is carried onto the other's
# colours (texture_gap) differ in texture, which no colour map can give. Measured on benchmarks/
# learning_suite.py's task family, first batches and fitted colour starts: stripes added (zebra) 1.44 and
# 1.52; every colour map, near or far, and the photographs' grade at most 1.16 (grey <-> colour).
TEXTURE_GAP = 1.3
# A domain whose pixel variance lies this little off the grey axis (off_axis_share) is greyscale; JPEG
# and resampling leave a grey image's channels a little apart, a colour domain lies far above.
GREY_DOMAIN_SHARE = 1e-3


@dataclass(frozen=True)
class ColourStart:
    """What the fit chose: the start's name, and how far the fitted colours are from B's (sliced W2);
    the identity's fit is None from a grey domain, where it is not fitted."""

    start: str
    distance: float
    identity_distance: float | None
    given: str | None = None  # why the start was given rather than chosen (``fit_colour_start``'s mix)
    weighed_permutations: bool = False  # whether channel permutations were among the starts fitted

    def describe(self) -> str:
        if self.given is not None:
            return f"colour start: {self.start}, {self.given} (colour distance {self.distance:.4f})"
        if self.start == "identity":
            return f"colour start: near the identity (colour distance {self.distance:.4f})"
        if self.identity_distance is None:
            return f"colour start: {self.start}, from a grey domain (colour distance {self.distance:.4f})"
        return (f"colour start: {self.start} (colour distance {self.distance:.4f}, against "
                f"{self.identity_distance:.4f} from the identity)")


def colour_distance(source_images: torch.Tensor, target_images: torch.Tensor) -> float:
    """How far apart two batches' pixel colours lie (N×C×H×W each, in [-1, 1]): the sliced
    Wasserstein-2 distance between their pixel clouds, 0 for the same colours. No random state."""
    source, target = pixel_cloud(source_images.detach().cpu()), pixel_cloud(target_images.detach().cpu())
    return float(sliced_wasserstein(source, target, sphere_directions(DIRECTIONS, source.shape[1])))


def fine_detail(images: torch.Tensor) -> float:
    """How much fine structure (edges, stripes) a batch holds (N×C×H×W in [-1, 1]): the mean absolute
    difference between its luma (Rec. 601 for 3 channels, the channels' mean otherwise) and the luma's
    3×3 box blur. A colour map changes it only through the luma's slope; a texture adds to it."""
    images = images.detach().float()
    if images.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114], device=images.device).view(1, 3, 1, 1)
        luma = (images * weights).sum(1, keepdim=True)
    else:
        luma = images.mean(1, keepdim=True)
    blurred = F.avg_pool2d(F.pad(luma, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return float((luma - blurred).abs().mean())


def texture_gap(a: torch.Tensor, a_in_b_colours: torch.Tensor, b: torch.Tensor, b_in_a_colours: torch.Tensor) -> float:
    """How many times more fine detail (``fine_detail``) one domain holds than the other, beyond what the
    colour maps between them explain: the geometric mean of detail(B) / detail(A carried onto B's colours)
    and detail(B carried onto A's) / detail(A), or its inverse where that is below 1. Near 1 when a colour
    map relates the domains (each carried batch then holds its target's detail), above where one domain
    has a texture the other lacks, whichever way round (the carried batch keeps its own detail)."""
    # A flat batch holds no detail, up to float32 rounding in the blur (3e-8 to 6e-8 for most grey levels), which
    # this floor outweighs: two flat domains are 1, one flat against a textured one a large gap.
    tiny = 1e-6
    details = [fine_detail(images) + tiny for images in (b, a_in_b_colours, b_in_a_colours, a)]
    ratio = details[0] / details[1] * details[2] / details[3]
    return math.sqrt(max(ratio, 1.0 / ratio))


def texture_verdict(a: torch.Tensor, b: torch.Tensor, forward: nn.Module, backward: nn.Module) -> tuple[bool, str]:
    """Whether domains A and B (first batches) differ in texture, judged with two generators' fitted
    colour starts (``forward`` carries A onto B's colours, ``backward`` B onto A's; their bodies are
    still at nothing): ``texture_gap`` above TEXTURE_GAP. Returns it and the log line's words."""
    with torch.no_grad():
        gap = texture_gap(a, forward.colour_only(a), b, backward.colour_only(b))
    texture = gap > TEXTURE_GAP
    return texture, (f"fine detail {gap:.2f} times apart beyond the colour starts ({'>' if texture else '<='} "
                     f"{TEXTURE_GAP:g}): " + ("a texture map, the colour starts go back to the identity" if texture
                                             else "the colour starts stay"))


def off_axis_share(images: torch.Tensor) -> float:
    """The share of a batch's pixel-colour variance that lies off the grey axis (N×3×H×W in [-1, 1]):
    0 for greyscale images (every pixel r = g = b), far above GREY_DOMAIN_SHARE for colour ones (the task
    family's, in benchmarks/README.md); 1 for other than 3 channels (no grey axis to lie on)."""
    if images.shape[1] != 3:
        return 1.0
    pixels = pixel_cloud(images.detach().cpu())
    centred = pixels - pixels.mean(0)
    total = centred.pow(2).sum()
    if total == 0:
        return 0.0 if bool((pixels == pixels[:, :1]).all()) else 1.0
    on_axis = centred.mean(1).pow(2).sum() * 3  # each pixel's component along (1, 1, 1) / sqrt(3), squared
    return float((total - on_axis) / total)


def choose_grey_output(generator: nn.Module, target_images: torch.Tensor, target: str) -> str | None:
    """``--grey_output_for_grey``: make ``generator`` output grey (its colour branch's ``grey_output``)
    when the target domain's images lie on the grey axis (``GREY_DOMAIN_SHARE``); returns the log line's
    reason when it did (``target`` names the domain), None when the domain is in colour."""
    colour = getattr(generator, "colour", None)
    if colour is None:
        raise ValueError("--grey_output_for_grey makes the colour branch output grey: set --colour_branch "
                         "(and --residual_output), or leave it off")
    share = off_axis_share(target_images)
    if share > GREY_DOMAIN_SHARE:
        return None
    colour.set_grey_output(True)
    return f"outputs grey: domain {target}'s pixels lie on the grey axis (off-axis variance share {share:.2g})"


def signed_permutations(channels: int = 3) -> list[tuple[str, torch.Tensor]]:
    """(name, matrix) for every signed permutation of the channels, the identity first (only the
    identity for other than 3 channels: grey or two-channel data has no such palette symmetries)."""
    if channels != 3:
        return [("identity", torch.eye(channels))]
    found = []
    for order in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            matrix = torch.zeros(3, 3)
            for row, (column, sign) in enumerate(zip(order, signs, strict=True)):
                matrix[row, column] = sign
            name = ", ".join(("" if sign > 0 else "-") + "rgb"[column] for column, sign in zip(order, signs, strict=True))
            found.append((f"({name})", matrix))
    found.sort(key=lambda item: item[0] != "(r, g, b)")
    return [("identity" if name == "(r, g, b)" else name, matrix) for name, matrix in found]


def histogram_matching(source: torch.Tensor, target: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """Per-channel histogram matching from ``source``'s pixel cloud to ``target``'s (P×C, Q×C): each
    value goes to the target's value at the same quantile (tied values to their run's middle), what
    the "histogram matching" baseline does. A pure function of pixels (P×C)."""
    count = min(len(source), len(target))
    source_sorted = source[torch.linspace(0, len(source) - 1, count).long()].sort(0).values.T.contiguous()
    target_sorted = target[torch.linspace(0, len(target) - 1, count).long()].sort(0).values.T.contiguous()

    def matched(pixels: torch.Tensor) -> torch.Tensor:
        values = pixels.T.contiguous()
        first = torch.searchsorted(source_sorted, values)
        after = torch.searchsorted(source_sorted, values, right=True)
        middle = ((first + after - 1) // 2).clamp(0, count - 1)
        return target_sorted.gather(1, middle).T

    return matched


def _as_image(pixels: torch.Tensor) -> torch.Tensor:
    """P×C pixels as one 1×C×P×1 picture: a 1×1-convolution branch runs them in one call."""
    return pixels.T.reshape(1, pixels.shape[1], -1, 1)


def _mapped(branch: nn.Module, pixels: torch.Tensor, clamp: float) -> torch.Tensor:
    """The generator's output at its start (the body's h is zero) for ``pixels``: tanh(M atanh(x) + c(x)),
    on the grey axis for a grey target (``branch.project``)."""
    skip = torch.atanh(pixels.clamp(-clamp, clamp)) @ branch.mix.T
    return branch.project(torch.tanh(skip + branch(_as_image(pixels))[0, :, :, 0].T))  # P×C: channels on dim 1


@dataclass(frozen=True)
class _Start:
    """A start of the fit: the skip's channel mix M (exact for a signed permutation), and a map for c to
    reach first where M alone cannot give it (histogram matching), else None."""

    name: str
    mix: torch.Tensor
    reach: Callable[[torch.Tensor], torch.Tensor] | None = None


def _fit(branch: nn.Module, source: torch.Tensor, target: torch.Tensor, start: _Start, steps: int, clamp: float,
         directions: torch.Tensor, chooser: torch.Generator, sorted_target: torch.Tensor) -> float:
    """Set the start's channel mix; with a map to reach, a third of the steps bring c(x) to it (L2); the
    rest fit the colours to B's (sliced W2). Returns the final distance to ``sorted_target``, the sorted
    projections of the fixed sample of B's colours that the source's first pixels are compared with."""
    branch.set_mix(start.mix)
    optimizer = torch.optim.Adam(branch.parameters(), lr=LEARNING_RATE)
    reach = steps // 3 if start.reach is not None else 0
    for step in range(steps):
        pixels = source[torch.randint(len(source), (SAMPLE_PIXELS,), generator=chooser)]
        out = _mapped(branch, pixels, clamp)
        if step < reach:
            loss = (out - start.reach(pixels)).pow(2).mean()
        else:
            wanted = target[torch.randint(len(target), (SAMPLE_PIXELS,), generator=chooser)]
            loss = sliced_wasserstein(out, wanted, directions)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        mapped = sorted_projections(_mapped(branch, source[:len(sorted_target)], clamp), directions)
        return float(quantile_distance(mapped, sorted_target))


def fit_colour_start(generator: nn.Module, source_images: torch.Tensor, target_images: torch.Tensor, steps: int,
                     seed: int = 0, mix: torch.Tensor | None = None, given: str = "given") -> ColourStart:
    """Fit ``generator.colour`` (in place, on the CPU, then back to its device) so that the colours of
    G(source) follow those of ``target`` (see the module docstring); returns what it chose. With
    ``mix`` (a signed permutation) the fit starts from it alone, and ``given`` says why.

    Deterministic for the same images, seed and initial weights. The body is left as it is (its last
    convolution zeroed, so G is the colour map alone at the start).
    """
    branch = getattr(generator, "colour", None)
    if branch is None:
        raise ValueError("--colour_warmup_steps fits the colour branch: set --colour_branch (and --residual_output)")
    chooser = torch.Generator().manual_seed(seed)
    source, target = pixel_cloud(source_images.detach().cpu()), pixel_cloud(target_images.detach().cpu())
    source = source[torch.randperm(len(source), generator=chooser)]
    target = target[torch.randperm(len(target), generator=chooser)]
    device = next(branch.parameters()).device
    work = copy.deepcopy(branch).float().cpu()
    initial = copy.deepcopy(work.state_dict())
    directions = sphere_directions(DIRECTIONS, source.shape[1])
    clamp = generator.residual_clamp
    count = min(len(source), len(target), 8 * SAMPLE_PIXELS)
    sorted_target = sorted_projections(target[:count], directions)  # what every fit is scored against
    # From a grey domain into a colour one, the start is histogram matching alone: the identity would
    # leave the pictures grey, and a permutation of equal channels is the identity or its negative. The
    # fits' distances cannot choose there: G's colours of a grey picture lie on one curve, which cannot
    # fill B's three-dimensional cloud (the identity's fit ended closer to B's colours than histogram
    # matching's and 5 dB further from the truth; benchmarks/README.md).
    # Into a grey domain, the start is the identity alone: G's output is projected on the grey axis, where
    # a permutation or a channel's sign only reweighs a grey level, and the fits' 1-D distances cannot
    # choose either (on grey seed 0, red negated ended closer to B's grey levels and 6 dB lower).
    grey_into_colour = off_axis_share(source_images) <= GREY_DOMAIN_SHARE < off_axis_share(target_images)
    into_grey = off_axis_share(target_images) <= GREY_DOMAIN_SHARE
    identity = torch.eye(*work.mix.shape)
    matched = _Start("histogram matching", identity, histogram_matching(source, target))
    if mix is not None:
        names = {tuple(matrix.flatten().tolist()): name for name, matrix in signed_permutations(source.shape[1])}
        starts = [_Start(names[tuple(mix.flatten().tolist())], mix.float().cpu())]
    elif grey_into_colour:
        starts = [matched]
    elif into_grey:
        starts = [_Start("identity", identity)]
    else:
        permutations = signed_permutations(source.shape[1])
        with torch.no_grad():
            closeness = [float(quantile_distance(sorted_projections(source[:count] @ m.T, directions), sorted_target))
                         for _, m in permutations[1:]]
        order = sorted(range(len(closeness)), key=closeness.__getitem__)
        ranked = [permutations[0]] + [permutations[1 + i] for i in order[:CANDIDATES]]
        # Also the closest plain permutation (no channel negated), fitted last so that the other starts'
        # fits draw what they drew without it: a hue rotation between two of the cube's symmetries lies
        # raw-closest to a signed one whose fit ends far from the truth (hue150: (b, -g, -r)).
        plain = next(permutations[1 + i] for i in order if bool((permutations[1 + i][1] >= 0).all()))
        after = [] if any(plain[0] == name for name, _ in ranked) else [plain]
        starts = [_Start(name, matrix) for name, matrix in ranked] + [matched] + [
            _Start(name, matrix) for name, matrix in after]
    fitted = []
    for start in starts:
        work.load_state_dict(initial)
        distance = _fit(work, source, target, start, steps, clamp, directions, chooser, sorted_target)
        fitted.append((distance, start.name, copy.deepcopy(work.state_dict())))
    # Another start replaces the identity only when its fit ends clearly closer (from or into grey there is one).
    distance, name, state = min(fitted, key=lambda item: item[0])
    if distance >= ACCEPT_RATIO * fitted[0][0]:
        distance, name, state = fitted[0]
    work.load_state_dict(state)
    with torch.no_grad():
        for kept, fitted_param in zip(branch.parameters(), work.parameters(), strict=True):
            kept.copy_(fitted_param.to(device, kept.dtype))
        branch.set_mix(work.mix)
    if mix is not None:
        return ColourStart(name, distance, None, given)
    return ColourStart(name, distance, None if grey_into_colour else fitted[0][0],
                       weighed_permutations=not (grey_into_colour or into_grey))
