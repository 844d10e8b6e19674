"""The colour start (``--colour_warmup_steps``): a fit of G's colour branch to the other domain's colours.

On generated tasks with known answers: a channel rotation must be found as one (a descent from the
identity would not), a map near the identity must stay near it, and the fitted generator must beat
doing nothing on the held-out truth. A few hundred steps on 16 small pictures: seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.data.synthetic_tasks import write_task_dataset
from cyclegan.metrics.paired import psnr
from cyclegan.networks import define_G
from cyclegan.recipes import colour_start
from cyclegan.recipes.colour_start import fit_colour_start, signed_permutations


def pictures(folder: Path) -> torch.Tensor:
    files = sorted(folder.glob("*.png"))
    return torch.stack([torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1) for f in files]
                       ).float() / 127.5 - 1


def psnr_on_test_images(net: torch.nn.Module, root: Path) -> tuple[float, float]:
    """Mean PSNR on the task's testA against testA_gt: the generator's, and doing nothing's."""
    source, truth = pictures(root / "testA"), pictures(root / "testA_gt")
    with torch.no_grad():
        out = net(source)
    to_unit = lambda t: (t + 1) / 2  # noqa: E731
    return float(psnr(to_unit(out), to_unit(truth)).mean()), float(psnr(to_unit(source), to_unit(truth)).mean())


def generator() -> torch.nn.Module:
    torch.manual_seed(0)
    return define_G(3, 3, 4, "resnet_6blocks", norm="none", init_type="kaiming", residual_output=True,
                    colour_branch=16)


def test_signed_permutations_are_the_48_symmetries_of_the_rgb_cube_identity_first():
    found = signed_permutations()
    assert len(found) == 48 and found[0][0] == "identity" and torch.equal(found[0][1], torch.eye(3))
    matrices = torch.stack([m for _, m in found])
    assert len({tuple(m.flatten().tolist()) for m in matrices}) == 48
    assert torch.allclose(matrices @ matrices.transpose(1, 2), torch.eye(3).expand(48, 3, 3))  # orthogonal
    names = dict(found)
    assert torch.equal(names["(b, r, g)"], torch.tensor([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]]))  # out = (b, r, g)
    assert torch.equal(names["(-r, -g, -b)"], -torch.eye(3))  # the negative
    assert [name for name, _ in signed_permutations(1)] == ["identity"]


@pytest.mark.slow
@pytest.mark.parametrize(("task", "seed", "start"), [
    ("permute_curve", 0, "(b, r, g)"), ("tint", 0, "identity"), ("colourize", 0, "histogram matching"),
    # the negative's fit from c alone ended 7 dB over doing nothing, and a channel swap's fit closer to B
    ("invert", 1, "(-r, -g, -b)"),
])
def test_the_colour_start_finds_the_map_and_beats_doing_nothing(tmp_path, monkeypatch, task, seed, start):
    monkeypatch.setattr(colour_start, "SAMPLE_PIXELS", 2048)
    root = write_task_dataset(task, tmp_path / task, n=16, size=32, n_test=4, seed=seed)
    net = generator()
    chosen = fit_colour_start(net, pictures(root / "trainA"), pictures(root / "trainB"), steps=150)
    assert chosen.start == start, chosen.describe()
    assert chosen.describe().startswith("colour start: ")
    fitted, nothing = psnr_on_test_images(net, root)
    assert fitted > nothing + 3, (fitted, nothing)
    if start.startswith("("):  # a signed permutation is the skip's channel mix, exactly
        assert torch.equal(net.colour.mix, dict(signed_permutations())[start]) and net.colour.mixes
    # the same images, seed and initial weights give the same branch
    again = generator()
    fit_colour_start(again, pictures(root / "trainA"), pictures(root / "trainB"), steps=150)
    assert all(torch.equal(a, b) for a, b in zip(net.colour.state_dict().values(), again.colour.state_dict().values(),
                                                  strict=True))


def test_histogram_matching_gives_each_channel_the_targets_quantiles():
    generator = torch.Generator().manual_seed(0)
    grey = (torch.randperm(4000, generator=generator) / 3999 * 2 - 1)[:, None].expand(-1, 3)  # grey, no ties
    target = torch.stack([torch.rand(4000, generator=generator).pow(power) * 2 - 1 for power in (0.5, 1.0, 3.0)], 1)
    matched = colour_start.histogram_matching(grey, target)(grey)
    assert torch.equal(matched.sort(0).values, target.sort(0).values)  # each channel's values, exactly
    assert not torch.equal(matched[:, 0], matched[:, 2])  # one grey level, three different curves
    assert bool((matched[grey[:, 0].argsort()].diff(dim=0) >= 0).all())  # each curve rises with the grey level
    flat = colour_start.histogram_matching(torch.zeros(10, 3), target[:10])(torch.zeros(1, 3))
    assert torch.equal(flat, target[:10].sort(0).values[4:5])  # tied values go to their run's middle


def test_the_colour_start_needs_a_colour_branch():
    torch.manual_seed(0)
    plain = define_G(3, 3, 4, "resnet_6blocks", norm="none", residual_output=True)
    with pytest.raises(ValueError, match="--colour_branch"):
        fit_colour_start(plain, torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), steps=1)


def test_off_axis_share_tells_a_grey_domain_from_a_colour_one(tmp_path):
    root = write_task_dataset("grey", tmp_path / "grey", n=4, size=32, n_test=1)
    colour, grey = pictures(root / "trainA"), pictures(root / "trainB")
    assert colour_start.off_axis_share(colour) > 0.2
    assert colour_start.off_axis_share(grey) == pytest.approx(0.0, abs=1e-6)
    # a grey image saved with a byte of noise per channel (JPEG, resampling) is still grey; a faint tint is not
    noisy = (grey + torch.randint(-1, 2, grey.shape, generator=torch.Generator().manual_seed(0)) / 127.5).clamp(-1, 1)
    assert colour_start.off_axis_share(noisy) <= colour_start.GREY_DOMAIN_SHARE
    tinted = grey + torch.tensor([0.1, 0.0, -0.1]).view(1, 3, 1, 1) * (grey + 1) / 2
    assert colour_start.off_axis_share(tinted) > colour_start.GREY_DOMAIN_SHARE
    assert colour_start.off_axis_share(grey[:, :1]) == 1.0  # one channel: no grey axis to lie on
    assert colour_start.off_axis_share(torch.zeros(1, 3, 4, 4)) == 0.0  # a flat grey picture


def test_a_grey_output_lies_on_the_grey_axis_and_off_changes_nothing():
    net = generator()
    torch.nn.init.normal_(net.colour[-1].weight, std=0.3)  # a colour branch that changes the colours
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        coloured = net(x)
        assert not torch.equal(coloured, x.clamp(-0.99, 0.99))
        net.colour.set_grey_output(True)
        grey = net(x)
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    assert torch.allclose(grey, coloured.mean(1, keepdim=True).expand_as(coloured), atol=1e-6)
    assert torch.allclose(net.colour_only(x), net.colour_only(x).mean(1, keepdim=True).expand_as(x), atol=1e-6)
    # kept with the weights; a state dict from before the buffer loads strictly, as colour
    state = net.state_dict()
    assert float(state["colour.grey_output"]) == 1.0
    old = generator()
    old.load_state_dict({k: v for k, v in state.items() if k != "colour.grey_output"}, strict=True)
    assert float(old.colour.grey_output) == 0.0
    with torch.no_grad():
        assert torch.equal(old(x), coloured)


def test_the_colour_start_fits_a_grey_output_to_a_grey_domain(tmp_path, monkeypatch):
    monkeypatch.setattr(colour_start, "SAMPLE_PIXELS", 1024)
    root = write_task_dataset("grey", tmp_path / "grey", n=8, size=32, n_test=4)
    net = generator()
    net.colour.set_grey_output(True)
    chosen = fit_colour_start(net, pictures(root / "trainA"), pictures(root / "trainB"), steps=90)
    assert chosen.start == "identity" and not net.colour.mixes  # into grey, a channel's place or sign is no start
    fitted, nothing = psnr_on_test_images(net, root)
    assert fitted > nothing + 3, (fitted, nothing)


def test_a_channel_mix_makes_a_signed_permutation_exact_and_loads_from_before_it():
    net = generator()
    net.start_as_identity()
    x = torch.rand(2, 3, 8, 8) * 1.8 - 0.9  # inside the skip's clamp
    negative_swap = dict(signed_permutations())["(g, -r, b)"]
    with torch.no_grad():
        net.colour.set_mix(negative_swap)
        swapped = net(x)
    assert net.colour.mixes
    assert torch.allclose(swapped, torch.stack([x[:, 1], -x[:, 0], x[:, 2]], 1), atol=1e-5)
    state = net.state_dict()
    assert torch.equal(state["colour.mix"], negative_swap)
    reloaded = generator()
    reloaded.load_state_dict(state, strict=True)
    assert reloaded.colour.mixes and torch.equal(reloaded(x), swapped)
    # a state dict from before the buffer loads strictly, unmixed; start_as_identity unmixes too
    old = generator()
    old.load_state_dict({k: v for k, v in state.items() if k != "colour.mix"}, strict=True)
    assert not old.colour.mixes and torch.equal(old.colour.mix, torch.eye(3))
    net.start_as_identity()
    assert not net.colour.mixes and torch.allclose(net(x), x, atol=1e-6)


def test_texture_gap_tells_stripes_added_from_a_colour_map_either_way_round(tmp_path):
    """Stripes added (zebra's training sets, each side left as it is: no colour map gives stripes) stand
    above TEXTURE_GAP whichever domain holds them. A tint and a film look carried exactly onto the other
    side's colours (valA -> valA_gt) are 1, and under the threshold even left unmapped; two flat domains
    are 1, a flat one against stripes a large gap."""
    zebra = write_task_dataset("zebra", tmp_path / "zebra", n=32, size=64, n_test=2, seed=0)
    plain, striped = pictures(zebra / "trainA"), pictures(zebra / "trainB")
    gap = colour_start.texture_gap(plain, plain, striped, striped)
    assert gap > colour_start.TEXTURE_GAP
    assert colour_start.texture_gap(striped, striped, plain, plain) == pytest.approx(gap)
    for task in ("tint", "film"):
        root = write_task_dataset(task, tmp_path / task, n=2, size=64, n_test=8, seed=0)
        source, truth = pictures(root / "valA"), pictures(root / "valA_gt")
        assert colour_start.texture_gap(source, truth, truth, source) == pytest.approx(1.0)
        assert colour_start.texture_gap(source, source, truth, truth) < colour_start.TEXTURE_GAP
    flat = torch.zeros(2, 3, 16, 16)
    assert colour_start.fine_detail(flat) == 0.0
    assert colour_start.texture_gap(flat, flat, flat + 0.5, flat + 0.5) == pytest.approx(1.0)
    for level in (0.3, 0.7, -0.45):  # their blur leaves float32 rounding (0.3 gave a gap of 3.98 on a 1e-8 floor)
        assert colour_start.texture_gap(flat, flat, flat + level, flat + level) < 1.1 < colour_start.TEXTURE_GAP
    flat = torch.zeros_like(striped)
    assert colour_start.texture_gap(flat, flat, striped, striped) > 1e3
