"""Learning-rate policies, stepped once per epoch by the trainer.

- ``linear``: constant for ``n_epochs``, then linearly towards zero over ``n_epochs_decay`` (the
  reference's lambda rule, epoch numbers counted from ``epoch_count``);
- ``step``: ×0.1 every ``lr_decay_iters`` epochs;
- ``plateau``: ×0.2 when the validation number stops improving (fed a real validation score by
  the trainer, never the training loss as a stand-in);
- ``cosine``: cosine from ``lr`` to 0 over the whole run (``n_epochs + n_epochs_decay``; the
  reference anneals over ``n_epochs`` only, so its LR rises again during the decay phase).
"""

from __future__ import annotations

from torch.optim import Optimizer, lr_scheduler

from cyclegan.config import OptimConfig

LR_POLICIES = ("linear", "step", "plateau", "cosine")


def build_scheduler(
    optimizer: Optimizer, optim: OptimConfig, mode: str = "min"
) -> lr_scheduler.LRScheduler | lr_scheduler.ReduceLROnPlateau:
    """``mode`` says whether the validation objective is minimised or maximised (plateau only)."""
    policy = optim.lr_policy
    if policy == "linear":

        def linear_factor(epochs_done: int) -> float:
            epoch = optim.epoch_count + epochs_done  # the epoch about to run
            return 1.0 - max(0, epoch - optim.n_epochs) / float(optim.n_epochs_decay + 1)

        return lr_scheduler.LambdaLR(optimizer, lr_lambda=linear_factor)
    if policy == "step":
        return lr_scheduler.StepLR(optimizer, step_size=optim.lr_decay_iters, gamma=0.1)
    if policy == "plateau":
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=0.2, threshold=0.01, patience=5)
    if policy == "cosine":
        total_epochs = max(1, optim.n_epochs + optim.n_epochs_decay)
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_epochs, eta_min=0.0)
    raise ValueError(f"unknown --lr_policy {policy!r}; known: {', '.join(LR_POLICIES)}")


def is_plateau(scheduler) -> bool:
    return isinstance(scheduler, lr_scheduler.ReduceLROnPlateau)


def step_scheduler(scheduler, validation_score: float | None) -> None:
    """Advance one epoch; ``plateau`` needs the epoch's validation score."""
    if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
        if validation_score is None:
            raise ValueError("--lr_policy plateau needs a validation score; provide <dataroot>/valA and valB")
        scheduler.step(validation_score)
    else:
        scheduler.step()
