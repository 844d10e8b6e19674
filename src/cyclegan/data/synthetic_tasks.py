"""A family of generated unpaired tasks with known answers (``cyclegan data synthetic --task NAME``).

Every task draws the scenes of :mod:`cyclegan.data.synthetic` (its renderer, palette and generator
streams: a scene is a pure function of (seed, split, index)) and passes them through one known
translation, so a preset can be measured on mappings it was never tuned on (the learning issue): maps
near the identity (a tint, a film look), maps far from it (channel rotations, a hue rotation, an
inversion, a strong tone curve), a texture change that keeps the layout (stripes on one class of
shapes: horse -> zebra in miniature), a map that changes only some objects, and a greyscale <-> colour
pair. ``default`` is the built-in set itself (:func:`cyclegan.data.write_synthetic_dataset`, byte for
byte).

Each task is a small pure function on ``H x W x 3`` uint8 images, registered in :data:`SYNTHETIC_TASKS`
with its group and formula; its docstring says why the two domains' distributions pin the map down
from unpaired data. For most tasks the function is the A -> B map: domain A holds scenes, domain B
*other, independently drawn* scenes under the map, and ``testA_gt = map(testA)``. For ``colourize``
it runs the other way (A = the scene in grey, B = scenes in colour, ``testA_gt`` = the colour scene).
Where the B -> A translation is a function of the B image too (``invertible``), ``testB_gt`` /
``valB_gt`` hold the scenes B was drawn from.

Shared facts the docstrings lean on (see :mod:`cyclegan.data.synthetic`): each palette colour belongs
to one kind of region (background, its pattern, rectangles, ellipses, triangles, stripes), the regions
occur with clearly different frequencies, and the lighting is a smooth one-sided darkening. So a map of
the colours is identifiable when it moves the palette away from itself: the only assignment of A's
colour clusters to B's that keeps both the shapes and the frequencies is cluster i -> map(cluster i).
Ellipses are the only white regions: white jittered by at most 8 and darkened to no less than 0.6 keeps
every channel >= 148, while every other palette colour has a channel <= 85 + 8 = 93, so
``min(r, g, b) >= ELLIPSE_MIN`` finds exactly the ellipses' visible pixels in a domain-A image.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cyclegan.core.fileio import atomic_write
from cyclegan.core.registry import Registry
from cyclegan.data.paired import side_by_side, write_paired_synthetic_dataset
from cyclegan.data.synthetic import (
    METADATA_FILENAME,
    SYNTHETIC_DEFAULTS,
    draw_scene,
    prepare_output_folder,
    save_png,
    synthetic_map,
    write_synthetic_dataset,
)

PixelMap = Callable[[np.ndarray], np.ndarray]

DEFAULT_TASK = "default"
NEAR, FAR, TEXTURE, SOME_OBJECTS, GREY = ("near the identity", "far from the identity", "texture",
                                          "some objects", "grey <-> colour")

# The streams of cyclegan.data.synthetic (a split's scenes come from its own sequence), so every task's
# A scenes are the built-in set's for the same seed; the paired writer's A halves are these too.
_STREAMS = {"trainA": 0, "trainB": 1, "testA": 2, "testB": 3, "valA": 4, "valB": 5}
_FOLDERS = ("trainA", "trainB", "testA", "testB", "testA_gt", "testB_gt", "valA", "valB", "valA_gt", "valB_gt")
ELLIPSE_MIN = 120  # min(r, g, b) of an ellipse pixel: >= 148; of any other region: <= 93 (module docstring)
STRIPE_WIDTH = 2  # zebra stripes, in pixels: an ellipse of typical size (radius 6 to 8) shows two or three
ELLIPSE_SHARE = 0.02  # the ellipse tasks keep scenes whose ellipses cover at least this share of the pixels
_MAX_REDRAWS = 1000  # about 80 % of scenes pass that filter: never reached in practice


@dataclass(frozen=True)
class SyntheticTask:
    """One task: how its two domains are drawn from a scene, and what that means."""

    name: str
    group: str  # NEAR, FAR, TEXTURE, SOME_OBJECTS or GREY
    formula: str  # the A -> B translation in words (the listing and the metadata)
    pixel_map: PixelMap  # a pure function of one image
    map_draws_b: bool = True  # True: A = scene, B = map(scene); False: B = scene, A = map(scene)
    invertible: bool = True  # B -> A is a function of the B image too (up to rounding): testB_gt / valB_gt written
    doc: str = ""  # why the map is identifiable from unpaired data (the function's docstring)
    # Which scenes the task draws from (None: all). A task that changes one kind of object keeps only the
    # scenes that show it: an unchanged scene scores the capped 100 dB for doing nothing, and a few of
    # those would lift the mean PSNR of every baseline above what any model can reach.
    scene_filter: Callable[[np.ndarray], bool] | None = None

    def scene(self, seed: int, stream: int, index: int, size: int) -> np.ndarray:
        """Scene ``index`` of a generator stream: the built-in set's, or for a filtered task the first of
        its redraws (seeded by (seed, stream, index, retry)) that the filter keeps."""
        scene = draw_scene(np.random.default_rng([seed, stream, index]), size)
        for retry in range(1, _MAX_REDRAWS + 1):
            if self.scene_filter is None or self.scene_filter(scene):
                return scene
            scene = draw_scene(np.random.default_rng([seed, stream, index, retry]), size)
        raise ValueError(f"task {self.name}: no scene of {size} px out of {_MAX_REDRAWS} passed its filter")

    def pair(self, scene: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The domain-A image of a scene and its true translation into domain B."""
        if self.map_draws_b:
            return scene, self.pixel_map(scene)
        return self.pixel_map(scene), scene


SYNTHETIC_TASKS: Registry[SyntheticTask] = Registry("synthetic task")


def synthetic_task(name: str, group: str, formula: str, map_draws_b: bool = True, invertible: bool = True,
                   scene_filter: Callable[[np.ndarray], bool] | None = None) -> Callable[[PixelMap], PixelMap]:
    """Register a pure image function as a task (see :class:`SyntheticTask`); returns it unchanged."""

    def register(pixel_map: PixelMap) -> PixelMap:
        SYNTHETIC_TASKS.add(name, SyntheticTask(name, group, formula, pixel_map, map_draws_b, invertible,
                                                inspect.getdoc(pixel_map) or "", scene_filter))
        return pixel_map

    return register


def _unit(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb, dtype=np.float64) / 255


def _bytes(unit: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(unit * 255), 0, 255).astype(np.uint8)


def _luma(unit: np.ndarray) -> np.ndarray:
    return unit @ np.array([0.299, 0.587, 0.114])  # Rec. 601, what "greyscale" means to most tools


# --- the built-in set ------------------------------------------------------------------------------

synthetic_task(DEFAULT_TASK, FAR, "(r, g, b) -> (g, b, 255 - r): the built-in set")(synthetic_map)


# --- near the identity -----------------------------------------------------------------------------

_SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])


@synthetic_task("tint", NEAR, "a warm tint: 70 % of each colour, 30 % of its sepia tone, clipped")
def tint(rgb: np.ndarray) -> np.ndarray:
    """A warm cast mixed across channels, so no per-channel transfer reproduces it.

    Identifiable: the tint moves every palette colour (blue gains red, white turns cream), so B's colour
    clusters sit beside A's rather than on them, each cluster keeping its region's shape and frequency;
    the one assignment that keeps both is cluster i -> tint(cluster i). It is also the nearest one, so a
    generator that starts as the identity only has to move each colour a little.
    """
    x = _unit(rgb)
    return _bytes(0.7 * x + 0.3 * (x @ _SEPIA.T))


@synthetic_task("film", NEAR, "a film look: an S-curve on contrast, shadows to teal, highlights to orange, "
                              "25 % less saturation")
def film(rgb: np.ndarray) -> np.ndarray:
    """A colour grade: the shift of each pixel depends on its brightness (a split tone), not on its
    channel alone.

    Identifiable: as for ``tint``, every palette colour moves (bright regions warm, dark ones cool), B's
    clusters keep A's shapes and frequencies, and the smooth lighting ramp inside each region traces
    the curve along its brightness: a region darkened by the ramp must turn teal where it is dark and
    orange where it is light, which no other assignment of colours reproduces.
    """
    x = _unit(rgb)
    y = _luma(x)[..., None]
    contrast = x + 0.35 * (x * x * (3 - 2 * x) - x)  # part of a smoothstep: an S-curve on each channel
    split = (1 - y) * np.array([-0.12, 0.03, 0.10]) + y * np.array([0.12, 0.04, -0.12])
    graded = contrast + split
    grey = _luma(graded)[..., None]
    return _bytes(grey + 0.75 * (graded - grey))


# --- far from the identity ---------------------------------------------------------------------------


@synthetic_task("permute_curve", FAR, "(r, g, b) -> (b, r, g), then 255 (x / 255)^0.5 per channel")
def permute_curve(rgb: np.ndarray) -> np.ndarray:
    """The learning issue's procedural task: a channel rotation, then a strong tone curve.

    Identifiable: the rotation sends the palette far from itself (red becomes green, blue red), so B's
    colours are not A's; region kinds keep their shapes and distinct frequencies, which leaves only
    cluster i -> map(cluster i). The curve lifts the shadows: the lighting ramp, a one-sided darkening
    in A, is compressed towards bright in B, which fixes the curve's shape inside each cluster.
    """
    x = _unit(rgb)[..., [2, 0, 1]]
    return _bytes(np.sqrt(x))


def _hue_rotate(rgb: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate the HSV hue by ``degrees``, keeping saturation and value."""
    x = _unit(rgb)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    value, low = x.max(-1), x.min(-1)
    chroma = value - low
    safe = np.where(chroma > 0, chroma, 1)
    hue = np.where(value == r, ((g - b) / safe) % 6, np.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = (hue + degrees / 60) % 6
    # HSV -> RGB: channel n (5 red, 3 green, 1 blue) is value - chroma * clip(min(k, 4 - k), 0, 1).
    k = (np.array([5, 3, 1]) + hue[..., None]) % 6
    return _bytes(value[..., None] - chroma[..., None] * np.clip(np.minimum(k, 4 - k), 0, 1))


@synthetic_task("hue150", FAR, "the HSV hue rotated by 150 degrees (saturation and value kept)")
def hue150(rgb: np.ndarray) -> np.ndarray:
    """A hue rotation of 150 degrees: red becomes a blue-green, blue becomes an orange-yellow.

    Identifiable: every saturated palette colour moves far from every palette colour (the palette's hues
    are 0, 300, 330, 240 and 210 degrees; rotated, 150, 90, 120, 30 and 0: the stripes' light blue
    becomes a light red, 120 RGB units from the background's pure red), so B's colours differ from A's;
    white keeps its place (no hue), which anchors the ellipses. Region shapes and frequencies then leave
    only cluster i -> rotate(cluster i). Value is kept, so the lighting ramp is the same darkening in
    both domains.
    """
    return _hue_rotate(rgb, 150.0)


@synthetic_task("invert", FAR, "(r, g, b) -> (255 - r, 255 - g, 255 - b): the negative")
def invert(rgb: np.ndarray) -> np.ndarray:
    """The photographic negative: decreasing in every channel, which no per-channel transfer (each keeps
    the order of levels) can reproduce.

    Identifiable: the palette's negatives are none of its colours (white becomes black, red cyan); the
    lighting, a one-sided darkening in A, becomes a one-sided lightening in B, which fixes the direction
    of every channel's map; region shapes and frequencies leave only cluster i -> 255 - cluster i.
    """
    return 255 - np.asarray(rgb, dtype=np.uint8)


# --- texture and some objects ------------------------------------------------------------------------


def ellipse_mask(rgb: np.ndarray) -> np.ndarray:
    """The visible pixels of a domain-A scene's ellipses: its only white regions (module docstring)."""
    return np.asarray(rgb).min(-1) >= ELLIPSE_MIN


def inside_distance(mask: np.ndarray) -> np.ndarray:
    """Chessboard distance from each pixel of ``mask`` to the nearest pixel outside it (1 on its outline,
    0 outside). The image border does not count as outside: a shape cut by the frame keeps its stripes."""
    height, width = mask.shape
    distance = np.zeros(mask.shape, dtype=np.int64)
    inside = mask.astype(bool)
    for step in range(1, max(height, width) + 1):  # bounded: a mask that fills the frame never erodes
        if not inside.any():
            break
        distance[inside] = step
        padded = np.pad(inside, 1, mode="edge")
        inside = np.logical_and.reduce([padded[dy:dy + height, dx:dx + width] for dy in range(3) for dx in range(3)])
    return distance


def shows_ellipses(rgb: np.ndarray) -> bool:
    """Whether a scene's ellipses cover at least ``ELLIPSE_SHARE`` of it (the ellipse tasks' filter)."""
    return float(ellipse_mask(rgb).mean()) >= ELLIPSE_SHARE


@synthetic_task("zebra", TEXTURE, f"dark stripes ({STRIPE_WIDTH} px, x 0.2) along the ellipses' outlines, "
                                  "the outermost dark; the rest unchanged", scene_filter=shows_ellipses)
def zebra(rgb: np.ndarray) -> np.ndarray:
    """Horse -> zebra in miniature: the white ellipses gain dark stripes that follow their outline; every
    other pixel is kept, so the layout is the same and only a texture is added.

    Identifiable: B's ellipses are always striped and A's never, and nothing else differs, so a
    translation that keeps the layout (cycle consistency) must stripe exactly the ellipses. The stripes
    are a function of the visible shape (the distance to its outline, the outermost band dark), not of
    a random phase, so one striping matches B's distribution: the outline is always dark there.
    """
    rgb = np.asarray(rgb, dtype=np.uint8)
    distance = inside_distance(ellipse_mask(rgb))
    dark = (distance > 0) & ((distance - 1) // STRIPE_WIDTH % 2 == 0)
    out = rgb.copy()
    out[dark] = np.rint(rgb[dark] * 0.2).astype(np.uint8)
    return out


@synthetic_task("ellipses", SOME_OBJECTS, "the ellipses turn from white to yellow: (r, g, b) -> (r, g, 0.2 b) "
                                          "on them; the rest unchanged", scene_filter=shows_ellipses)
def ellipses(rgb: np.ndarray) -> np.ndarray:
    """Only one kind of object changes colour: white ellipses become yellow, the rest of the scene is kept.

    Identifiable: B holds no white and A no yellow; everything else has the same distribution in both.
    The translation that keeps the layout and matches B's colours must recolour exactly the white
    regions, and yellow is the only colour B has that A lacks. Doing nothing keeps ~90 % of the pixels
    right, so the task measures whether a model changes what must change without damaging the rest.
    """
    rgb = np.asarray(rgb, dtype=np.uint8)
    mask = ellipse_mask(rgb)
    out = rgb.copy()
    out[..., 2] = np.where(mask, np.rint(rgb[..., 2] * 0.2), rgb[..., 2]).astype(np.uint8)
    return out


# --- greyscale <-> colour ----------------------------------------------------------------------------


def greyscale(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma in all three channels (an RGB file, so the task trains with the default channels)."""
    grey = _bytes(_luma(_unit(rgb)))
    return np.repeat(grey[..., None], 3, axis=-1)


@synthetic_task("grey", GREY, "colour -> grey: (r, g, b) -> Rec. 601 luma in every channel", invertible=False)
def grey(rgb: np.ndarray) -> np.ndarray:
    """Colour to greyscale, a fixed projection across the channels (per-channel transfers cannot make
    the channels equal). B -> A, colourisation, is ``colourize``; no ``testB_gt`` here.

    Identifiable: B's pixels all lie on the grey axis and A's do not, and the projection that keeps each
    region's brightness order (the lighting ramp darkens both domains alike) and the regions' relative
    brightness (white ellipses brightest, blue triangles and the purple pattern darkest) is the luma.
    """
    return greyscale(rgb)


@synthetic_task("colourize", GREY, "grey -> colour: A is the scene in grey (Rec. 601 luma), B in colour",
                map_draws_b=False)
def colourize(rgb: np.ndarray) -> np.ndarray:
    """Grey to colour: domain A holds the scenes in grey, domain B other scenes in colour; the truth for
    a grey A image is the colour scene it was made from. ``testB_gt`` is the grey of B.

    Identifiable, by context rather than by pixel: a grey level alone does not say which palette colour
    a pixel had (the lighting darkens by up to 0.6, and purple and blue are both dark), but the region
    says it: ellipses are white, triangles blue, rectangles pink, the background red under a purple
    pattern, and each kind has its own shape and frequency in B's colour scenes. The lighting is a
    smooth ramp, so neighbouring regions fix each other's shade.
    """
    return greyscale(rgb)


# --- writers -----------------------------------------------------------------------------------------


def _metadata(task: SyntheticTask, **sizes: Any) -> str:
    return json.dumps({**sizes, "task": task.name, "group": task.group, "map_AtoB": task.formula,
                       "ground_truth_BtoA": task.invertible}, indent=2, sort_keys=True) + "\n"


def write_task_dataset(
    task: str,
    out_dir: str | Path,
    n: int = SYNTHETIC_DEFAULTS["n"],
    size: int = SYNTHETIC_DEFAULTS["size"],
    seed: int = SYNTHETIC_DEFAULTS["seed"],
    n_test: int = SYNTHETIC_DEFAULTS["n_test"],
    overwrite: bool = False,
    n_val: int | None = None,
) -> Path:
    """Write task ``task``'s unpaired set in the built-in set's layout; returns ``out_dir``.

    ``trainA/ trainB/`` (``n`` each: B from other scenes than A), ``testA/ testB/`` (``n_test``),
    ``valA/ valB/`` (``n_val``, default ``n_test``: what training validates on), the true translations
    ``testA_gt/ valA_gt/`` and, for an invertible task, ``testB_gt/ valB_gt/``, with the inputs' file
    names. An unknown ``task`` raises a ValueError listing the known ones; ``default`` is exactly
    :func:`write_synthetic_dataset`. A non-empty ``out_dir`` is an error unless ``overwrite``.
    """
    spec = SYNTHETIC_TASKS.get(task)
    if spec.name == DEFAULT_TASK:
        return write_synthetic_dataset(out_dir, n=n, size=size, seed=seed, n_test=n_test, overwrite=overwrite,
                                       n_val=n_val)
    n_val = n_test if n_val is None else n_val
    root = prepare_output_folder(out_dir, _FOLDERS, n, n_test, size, overwrite)
    (root / METADATA_FILENAME).unlink(missing_ok=True)
    folders = [name for name in _FOLDERS if spec.invertible or not name.endswith("B_gt")]
    for name in folders:
        (root / name).mkdir(parents=True, exist_ok=True)

    def pair(split: str, i: int) -> tuple[np.ndarray, np.ndarray]:
        return spec.pair(spec.scene(seed, _STREAMS[split], i, size))

    for i in range(n):
        save_png(pair("trainA", i)[0], root / "trainA" / f"A_{i:05d}.png")
        save_png(pair("trainB", i)[1], root / "trainB" / f"B_{i:05d}.png")
    for split, count in (("test", n_test), ("val", n_val)):
        for i in range(count):
            a, a_truth = pair(f"{split}A", i)
            save_png(a, root / f"{split}A" / f"A_{i:05d}.png")
            save_png(a_truth, root / f"{split}A_gt" / f"A_{i:05d}.png")
            b_truth, b = pair(f"{split}B", i)
            save_png(b, root / f"{split}B" / f"B_{i:05d}.png")
            if spec.invertible:
                save_png(b_truth, root / f"{split}B_gt" / f"B_{i:05d}.png")
    atomic_write(root / METADATA_FILENAME, _metadata(spec, n=n, size=size, seed=seed, n_test=n_test, n_val=n_val),
                 durable=False)
    return root


def write_paired_task_dataset(
    task: str,
    out_dir: str | Path,
    n: int = SYNTHETIC_DEFAULTS["n"],
    size: int = SYNTHETIC_DEFAULTS["size"],
    seed: int = SYNTHETIC_DEFAULTS["seed"],
    n_test: int = SYNTHETIC_DEFAULTS["n_test"],
    overwrite: bool = False,
    n_val: int | None = None,
) -> Path:
    """pix2pix data for task ``task``: ``train/ val/ test/`` of ``size x 2 size`` A|B files, B the true
    translation of A; the A halves are the unpaired set's ``trainA / valA / testA`` for the same seed.
    ``default`` is exactly :func:`cyclegan.data.paired.write_paired_synthetic_dataset`."""
    spec = SYNTHETIC_TASKS.get(task)
    if spec.name == DEFAULT_TASK:
        return write_paired_synthetic_dataset(out_dir, n=n, size=size, seed=seed, n_test=n_test,
                                              overwrite=overwrite, n_val=n_val)
    n_val = n_test if n_val is None else n_val
    root = prepare_output_folder(out_dir, ("train", "test", "val"), n, n_test, size, overwrite)
    (root / METADATA_FILENAME).unlink(missing_ok=True)
    for split, count in (("train", n), ("test", n_test), ("val", n_val)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            a, b = spec.pair(spec.scene(seed, _STREAMS[f"{split}A"], i, size))
            save_png(side_by_side(a, b), root / split / f"A_{i:05d}.png")
    atomic_write(root / METADATA_FILENAME, _metadata(spec, paired=True, n=n, size=size, seed=seed, n_test=n_test,
                                                     n_val=n_val), durable=False)
    return root


def describe_tasks() -> str:
    """One line per registered task: name, group, formula (the CLI's listing)."""
    return "\n".join(f"{name}: {SYNTHETIC_TASKS.get(name).group}; {SYNTHETIC_TASKS.get(name).formula}"
                     for name in SYNTHETIC_TASKS.names())


__all__ = [
    "DEFAULT_TASK",
    "ELLIPSE_MIN",
    "ELLIPSE_SHARE",
    "STRIPE_WIDTH",
    "SYNTHETIC_TASKS",
    "SyntheticTask",
    "describe_tasks",
    "ellipse_mask",
    "greyscale",
    "inside_distance",
    "shows_ellipses",
    "synthetic_task",
    "write_paired_task_dataset",
    "write_task_dataset",
]
