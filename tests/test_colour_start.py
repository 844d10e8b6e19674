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
@pytest.mark.parametrize(("task", "start"), [("permute_curve", "(b, r, g)"), ("tint", "identity")])
def test_the_colour_start_finds_the_map_and_beats_doing_nothing(tmp_path, monkeypatch, task, start):
    monkeypatch.setattr(colour_start, "SAMPLE_PIXELS", 2048)
    root = write_task_dataset(task, tmp_path / task, n=16, size=32, n_test=4)
    net = generator()
    chosen = fit_colour_start(net, pictures(root / "trainA"), pictures(root / "trainB"), steps=150)
    assert chosen.start == start, chosen.describe()
    assert chosen.describe().startswith("colour start: ")
    source, truth = pictures(root / "testA"), pictures(root / "testA_gt")
    with torch.no_grad():
        out = net(source)
    to_unit = lambda t: (t + 1) / 2  # noqa: E731
    fitted, nothing = psnr(to_unit(out), to_unit(truth)).mean(), psnr(to_unit(source), to_unit(truth)).mean()
    assert fitted > nothing + 3, (float(fitted), float(nothing))
    # the same images, seed and initial weights give the same branch
    again = generator()
    fit_colour_start(again, pictures(root / "trainA"), pictures(root / "trainB"), steps=150)
    assert all(torch.equal(a, b) for a, b in zip(net.colour.state_dict().values(), again.colour.state_dict().values(),
                                                  strict=True))


def test_the_colour_start_needs_a_colour_branch():
    torch.manual_seed(0)
    plain = define_G(3, 3, 4, "resnet_6blocks", norm="none", residual_output=True)
    with pytest.raises(ValueError, match="--colour_branch"):
        fit_colour_start(plain, torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), steps=1)
