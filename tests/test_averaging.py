"""--ema_decay: the moving average of the translating networks, its checkpoint, exact resume, and
every reader of a checkpoint translating with it."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from cyclegan.core.checkpoint import inference_weights, load_checkpoint
from cyclegan.training.averaging import WeightAverage
from cyclegan.training.trainer import Trainer, train

from .helpers import tiny_config, tiny_dataset, whole_and_interrupted_runs


def test_the_average_follows_the_ema_rule_and_buffers_follow_the_network():
    nets = nn.ModuleDict({"G": nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1)), "D": nn.Linear(1, 1)})
    average = WeightAverage(nets, ["G"], decay=0.9)
    weight = nets["G"][0].weight
    with torch.no_grad():
        weight.fill_(1.0)
        average.update(nets)  # the first update copies
        weight.fill_(3.0)
        nets["G"][1].running_mean.fill_(5.0)
        average.update(nets)
    averaged = average.weights()["G"]
    assert set(averaged) == set(nets["G"].state_dict())
    assert torch.allclose(averaged["0.weight"], torch.tensor(0.9 * 1.0 + 0.1 * 3.0))
    assert averaged["1.running_mean"].item() == 5.0 and average.updates == 2
    with average.swapped_in(nets):
        assert torch.allclose(nets["G"][0].weight, torch.tensor(1.2)) and set(average.averages) == {"G"}
    assert nets["G"][0].weight is weight  # the raw network is back
    with pytest.raises(ValueError, match="--ema_decay must lie between 0 and 1"):
        WeightAverage(nets, ["G"], decay=1.0)


def test_inference_weights_prefer_the_average():
    raw = {"G_A": {"w": torch.zeros(1)}, "D_A": {"w": torch.zeros(1)}}
    assert inference_weights({"nets": raw, "ema": None}) == raw
    chosen = inference_weights({"nets": raw, "ema": {"nets": {"G_A": {"w": torch.ones(1)}}}})
    assert chosen["G_A"]["w"].item() == 1.0 and chosen["D_A"] is raw["D_A"]


@pytest.mark.slow
def test_resume_continues_the_average_exactly_and_inference_loads_it(tmp_path):
    from cyclegan.deploy.export import run_export_model
    from cyclegan.recipes.loading import load_generators

    data = tiny_dataset(tmp_path / "data", n=5)
    options = {"optim__ema_decay": 0.5}
    whole, resumed = whole_and_interrupted_runs(data, tmp_path / "ck", total=6, stop_at=2, **options)
    assert resumed.average.updates == 2
    resumed.fit()
    a = load_checkpoint(whole.run_dir / "latest.safetensors")
    b = load_checkpoint(resumed.run_dir / "latest.safetensors")
    assert a["ema"]["updates"] == b["ema"]["updates"] == 6 and set(a["ema"]["nets"]) == {"G_A", "G_B"}
    for name, weights in a["ema"]["nets"].items():
        for key, tensor in weights.items():
            assert torch.equal(tensor, b["ema"]["nets"][name][key]), (name, key)
    # The average is not the raw weights, and every reader of the checkpoint translates with it.
    raw, average = a["nets"]["G_A"], a["ema"]["nets"]["G_A"]
    assert any(not torch.equal(raw[key], average[key]) for key in raw)
    loaded = load_generators(whole.run_dir).nets["G_A"].state_dict()
    assert all(torch.equal(loaded[key], average[key]) for key in average)
    written = run_export_model(whole.run_dir, "latest", "reference", tmp_path / "ref")["files"]
    exported = torch.load(written["G_A"], weights_only=True)
    assert all(torch.equal(exported[key], average[key]) for key in exported)
    discriminator = torch.load(written["D_A"], weights_only=True)
    assert all(torch.equal(discriminator[key], a["nets"]["D_A"][key]) for key in discriminator)


@pytest.mark.slow
def test_validation_scores_the_average_and_a_run_without_one_can_start_it(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="cyclegan.train")
    data = tiny_dataset(tmp_path / "data", n=3)  # the synthetic set has valA_gt: PSNR is scored
    train(tiny_config(data, tmp_path / "ck", optim__max_iters=3))
    trainer = Trainer(tiny_config(data, tmp_path / "ck", optim__max_iters=6, optim__ema_decay=0.9))
    assert "kept no weight average" in caplog.text and trainer.average.updates == 0
    scored = []
    original = trainer.validator.score

    def spy(model, device, precision):
        scored.append({name: model.nets[name] for name in ("G_A", "G_B", "D_A")})
        return original(model, device, precision)

    trainer.validator.score = spy
    trainer.fit()
    assert scored and all(seen["G_A"] is trainer.average.averages["G_A"].module for seen in scored)
    assert scored[-1]["D_A"] is trainer.model.nets["D_A"]
    assert trainer.model.nets["G_A"] is not trainer.average.averages["G_A"].module  # swapped back
    assert trainer.average.updates == 3
