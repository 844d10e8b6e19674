"""Times every training step of a run, for ``benchmarks/vs_reference.py``; inert unless it sets
``VS_REFERENCE_TIMES``.

The benchmark puts this folder on ``PYTHONPATH``, so Python imports this file at start-up in the
reference's ``train.py``, CUT's ``train.py`` and ``cyclegan train`` alike, and nothing of theirs or
ours is edited. When a module named below is imported, one method is wrapped with a clock:

- theirs (junyanz/pytorch-CycleGAN-and-pix2pix and taesungp/contrastive-unpaired-translation):
  ``models.create_model`` returns the model with ``optimize_parameters`` timed: forward, losses,
  backward and the optimizers' steps, what their ``train.py`` calls once per iteration;
- ours: ``Trainer.fit`` times ``model.training_step``, the same work.

Each step's start and end (``time.perf_counter``, a system-wide monotonic clock on Linux, so the
benchmark can set them against its own launch time) go to the JSON file at exit, with this file's
import time. CUDA work is synchronised before a step's end is read.
"""

from __future__ import annotations

import atexit
import importlib.abc
import json
import os
import sys
import time
from typing import Any

OUT = os.environ.get("VS_REFERENCE_TIMES")
IMPORTED = time.perf_counter()
PID = os.getpid()  # data-loader workers are forked from the trainer: only the trainer writes
steps: list[tuple[float, float]] = []


def _synchronize() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(method: Any) -> Any:
    def step(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            _synchronize()
            steps.append((start, time.perf_counter()))

    return step


def _patch_their_models(module: Any) -> None:
    create_model = module.create_model

    def create_timed_model(opt: Any) -> Any:
        model = create_model(opt)
        model.optimize_parameters = timed(model.optimize_parameters)
        return model

    module.create_model = create_timed_model


def _patch_our_trainer(module: Any) -> None:
    fit = module.Trainer.fit

    def timed_fit(self: Any) -> Any:
        self.model.training_step = timed(self.model.training_step)
        return fit(self)

    module.Trainer.fit = timed_fit


PATCHES = {"models": _patch_their_models, "cyclegan.training.trainer": _patch_our_trainer}


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Finds the modules in PATCHES with the other finders and patches them once executed."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in PATCHES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                break
        else:
            return None
        execute = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            execute(module)
            PATCHES[name](module)

        spec.loader.exec_module = exec_module
        return spec


def _write() -> None:
    if os.getpid() != PID:
        return
    with open(OUT, "w") as handle:
        json.dump({"imported": IMPORTED, "exited": time.perf_counter(), "steps": steps}, handle)


if OUT:
    sys.meta_path.insert(0, _PatchAfterImport())
    atexit.register(_write)
