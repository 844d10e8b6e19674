"""A stand-in for ``wandb`` where it is not installed: the reference's ``util/visualizer.py`` imports it at
the top, but uses it only with ``--use_wandb``, which ``benchmarks/vs_reference.py`` never passes."""


def init(*args, **kwargs):
    raise RuntimeError("wandb is not installed: this is benchmarks/vs_reference_hook/stubs/wandb.py")


run = None
