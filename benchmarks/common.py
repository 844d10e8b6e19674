"""Shared pieces of the benchmarks: the reference-style baseline step, our step, timing, output.

The baseline (:class:`ReferenceStep`) is a CycleGAN iteration written the way
junyanz/pytorch-CycleGAN-and-pix2pix's ``CycleGANModel.optimize_parameters`` runs it, eager fp32
NCHW: forward; freeze D; zero G's grads; generator losses and ``backward``; G's Adam step; unfreeze
D; zero D's grads; ``backward_D_A`` and ``backward_D_B``, each evaluating D on the real image and on
a pooled fake and calling its own ``backward``; D's Adam step. Same networks (``define_G`` /
``define_D``), same losses (``nn.MSELoss`` against a label tensor expanded to the prediction, as the
reference's GANLoss; ``nn.L1Loss`` for cycle and identity), the reference's Adam construction
(``itertools.chain`` of both networks' parameters, no ``foreach`` argument) and the image pool's
semantics (our :class:`cyclegan.recipes.cycle_gan.pool.ImagePool`, seeded as our model seeds it, so that both steps
draw the same pooled fakes). ``tests/test_benchmarks.py`` checks that it computes the same losses
and weights as our step.

:func:`build_our_step` builds our step as ``cyclegan train`` does (``create_model``, the networks
moved and put in channels_last, optimizers, optionally ``torch.compile``), at a given precision.

FLOPs per iteration are counted from ``cyclegan.networks.inspect`` MACs (conv / transposed conv, batch
of one) with the usual convention that a backward pass costs twice a forward::

    forward MACs per image = (4 + 2·[λ_identity > 0]) · MACs(G) + 6 · MACs(D)
    FLOPs per iteration    = 3 × 2 × forward MACs per image × batch size

4 generator calls make fake_B, rec_A, fake_A, rec_B (2 more for identity); D runs twice in the
generator step (on fake_B, fake_A) and four times in its own step (real and pooled fake, per
domain). It slightly overstates the work (the frozen D's backward needs no weight gradients, the
D step's no input gradients): it is a yardstick for achieved / peak, not an exact count.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from cyclegan.config import DataConfig, ModelConfig, OptimConfig, RuntimeConfig, TrainConfig
from cyclegan.core.precision import Precision
from cyclegan.networks import define_D, define_G
from cyclegan.networks.layers import InstanceNorm2d
from cyclegan.recipes import preset_config_for
from cyclegan.recipes.base import set_requires_grad
from cyclegan.recipes.cycle_gan.config import CycleGANConfig
from cyclegan.recipes.cycle_gan.pool import ImagePool

# --- configurations ------------------------------------------------------------------------------


@dataclass
class BenchConfig:
    """One benchmark setting: the networks, the image size and the batch."""

    name: str
    size: int
    ngf: int
    ndf: int
    netG: str
    netD: str = "basic"
    batch_size: int = 1
    lambda_identity: float = 0.0
    input_nc: int = 3
    output_nc: int = 3
    norm: str = "instance"

    def describe(self) -> str:
        return (
            f"{self.name}: {self.size}×{self.size}, {self.netG} ngf {self.ngf}, "
            f"{self.netD} D ndf {self.ndf}, "
            f"batch {self.batch_size}, λ_identity {self.lambda_identity:g}, {self.norm} norm"
        )


def _preset_bench(name: str) -> BenchConfig:
    preset = preset_config_for(name)  # with what the preset sets for CycleGAN (its norm, λ_identity)
    return BenchConfig("cpu", size=preset.data.crop_size, ngf=preset.model.ngf, ndf=preset.model.ndf,
                       netG=preset.model.netG, netD=preset.model.netD, batch_size=preset.data.batch_size,
                       lambda_identity=preset.cycle_gan.lambda_identity, norm=preset.model.norm)


# `cpu`: what `--preset quick` (and `cyclegan demo`) trains; `paper`: the paper's setting (256×256,
# ngf/ndf 64, resnet_9blocks, 70×70 PatchGAN, λ_identity 0.5).
CONFIGS = {
    "cpu": _preset_bench("quick"),
    "paper": BenchConfig("paper", size=256, ngf=64, ndf=64, netG="resnet_9blocks", lambda_identity=0.5),
}


def train_config(bench: BenchConfig, seed: int = 0) -> TrainConfig:
    """The TrainConfig our model is built from (also read by the baseline, for the same values)."""
    return TrainConfig(
        data=DataConfig(
            input_nc=bench.input_nc,
            output_nc=bench.output_nc,
            crop_size=bench.size,
            batch_size=bench.batch_size,
        ),
        model=ModelConfig(
            netG=bench.netG,
            netD=bench.netD,
            ngf=bench.ngf,
            ndf=bench.ndf,
            norm=bench.norm,
        ),
        cycle_gan=CycleGANConfig(lambda_identity=bench.lambda_identity),
        optim=OptimConfig(),
        runtime=RuntimeConfig(seed=seed),
    )


# --- the reference-style baseline ----------------------------------------------------------------


class ReferenceGANLoss(nn.Module):
    """The reference's GANLoss for lsgan / vanilla: a label tensor expanded to the prediction."""

    def __init__(self, gan_mode: str = "lsgan", real_label: float = 1.0, fake_label: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("real_label", torch.tensor(real_label))
        self.register_buffer("fake_label", torch.tensor(fake_label))
        if gan_mode == "lsgan":
            self.loss = nn.MSELoss()
        elif gan_mode == "vanilla":
            self.loss = nn.BCEWithLogitsLoss()
        else:
            raise ValueError(f"the baseline implements lsgan and vanilla, not {gan_mode!r}")

    def forward(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = self.real_label if target_is_real else self.fake_label
        return self.loss(prediction, target.expand_as(prediction))


def with_torch_instance_norm(net: nn.Module) -> nn.Module:
    """Put torch's ``nn.InstanceNorm2d`` (the reference's layer) where ours is: same keys, its kernel."""
    for name, module in list(net.named_modules()):
        if type(module) is InstanceNorm2d:
            parent_name, _, child = name.rpartition(".")
            parent = net.get_submodule(parent_name) if parent_name else net
            setattr(parent, child, nn.InstanceNorm2d(module.num_features, module.eps, module.momentum,
                                                     module.affine, module.track_running_stats))
    return net


class ReferenceStep(nn.Module):
    """A CycleGAN iteration as the reference's ``optimize_parameters``, eager fp32 NCHW."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        m, d, o = config.model, config.data, config.optim
        c = config.cycle_gan
        self.lambda_A, self.lambda_B, self.lambda_idt = c.lambda_A, c.lambda_B, c.lambda_identity
        g_kwargs = {
            "norm": m.norm,
            "use_dropout": not m.no_dropout,
            "init_type": m.init_type,
            "init_gain": m.init_gain,
            "padding_type": m.padding_type,
        }
        d_kwargs = {"norm": m.norm, "init_type": m.init_type, "init_gain": m.init_gain}
        # Built in our model's order (G_A, G_B, D_A, D_B), so one seed gives both the same weights.
        self.netG_A = define_G(d.input_nc, d.output_nc, m.ngf, m.netG, **g_kwargs)
        self.netG_B = define_G(d.output_nc, d.input_nc, m.ngf, m.netG, **g_kwargs)
        self.netD_A = define_D(d.output_nc, m.ndf, m.netD, m.n_layers_D, **d_kwargs)
        self.netD_B = define_D(d.input_nc, m.ndf, m.netD, m.n_layers_D, **d_kwargs)
        for net in (self.netG_A, self.netG_B, self.netD_A, self.netD_B):
            with_torch_instance_norm(net)
        seed = config.runtime.seed or 0
        self.fake_A_pool = ImagePool(m.pool_size, seed=seed + 1)  # our model's seeds
        self.fake_B_pool = ImagePool(m.pool_size, seed=seed + 2)
        self.criterionGAN = ReferenceGANLoss(m.gan_mode, m.real_label, m.fake_label)
        self.criterionCycle = nn.L1Loss()
        self.criterionIdt = nn.L1Loss()
        betas = (o.beta1, o.beta2)
        self.optimizer_G = torch.optim.Adam(
            itertools.chain(self.netG_A.parameters(), self.netG_B.parameters()), lr=o.lr, betas=betas
        )
        self.optimizer_D = torch.optim.Adam(
            itertools.chain(self.netD_A.parameters(), self.netD_B.parameters()), lr=o.lr, betas=betas
        )
        self.losses: dict[str, torch.Tensor] = {}

    def load_from(self, nets: dict[str, nn.Module]) -> None:
        """Copy weights from our model's ``nets`` (G_A, G_B, D_A, D_B)."""
        for name in ("G_A", "G_B", "D_A", "D_B"):
            getattr(self, f"net{name}").load_state_dict(nets[name].state_dict())

    def networks(self) -> dict[str, nn.Module]:
        return {name: getattr(self, f"net{name}") for name in ("G_A", "G_B", "D_A", "D_B")}

    def forward_images(self) -> None:
        self.fake_B = self.netG_A(self.real_A)
        self.rec_A = self.netG_B(self.fake_B)
        self.fake_A = self.netG_B(self.real_B)
        self.rec_B = self.netG_A(self.fake_A)

    def backward_D_basic(self, netD: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        loss_D_real = self.criterionGAN(netD(real), True)
        loss_D_fake = self.criterionGAN(netD(fake.detach()), False)
        loss_D = (loss_D_real + loss_D_fake) * 0.5
        loss_D.backward()
        return loss_D

    def backward_D_A(self) -> None:
        fake_B = self.fake_B_pool.query(self.fake_B)
        self.losses["D_A"] = self.backward_D_basic(self.netD_A, self.real_B, fake_B)

    def backward_D_B(self) -> None:
        fake_A = self.fake_A_pool.query(self.fake_A)
        self.losses["D_B"] = self.backward_D_basic(self.netD_B, self.real_A, fake_A)

    def backward_G(self) -> None:
        lambda_idt, lambda_A, lambda_B = self.lambda_idt, self.lambda_A, self.lambda_B
        if lambda_idt > 0:
            self.idt_A = self.netG_A(self.real_B)
            loss_idt_A = self.criterionIdt(self.idt_A, self.real_B) * lambda_B * lambda_idt
            self.idt_B = self.netG_B(self.real_A)
            loss_idt_B = self.criterionIdt(self.idt_B, self.real_A) * lambda_A * lambda_idt
        else:
            loss_idt_A = loss_idt_B = 0
        loss_G_A = self.criterionGAN(self.netD_A(self.fake_B), True)
        loss_G_B = self.criterionGAN(self.netD_B(self.fake_A), True)
        loss_cycle_A = self.criterionCycle(self.rec_A, self.real_A) * lambda_A
        loss_cycle_B = self.criterionCycle(self.rec_B, self.real_B) * lambda_B
        loss_G = loss_G_A + loss_G_B + loss_cycle_A + loss_cycle_B + loss_idt_A + loss_idt_B
        loss_G.backward()
        self.losses = {"G_A": loss_G_A, "G_B": loss_G_B, "cycle_A": loss_cycle_A, "cycle_B": loss_cycle_B}
        if lambda_idt > 0:
            self.losses.update(idt_A=loss_idt_A, idt_B=loss_idt_B)

    def optimize_parameters(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        self.real_A, self.real_B = real_A, real_B
        self.forward_images()
        set_requires_grad([self.netD_A, self.netD_B], False)
        self.optimizer_G.zero_grad()
        self.backward_G()
        self.optimizer_G.step()
        set_requires_grad([self.netD_A, self.netD_B], True)
        self.optimizer_D.zero_grad()
        self.backward_D_A()
        self.backward_D_B()
        self.optimizer_D.step()
        return {name: value.detach() for name, value in self.losses.items()}


# --- our step ------------------------------------------------------------------------------------


def build_our_step(
    config: TrainConfig, device: torch.device, precision: str, channels_last: bool, compile: bool,
    compile_backend: str = "inductor",
) -> tuple[Any, Precision]:
    """Our model, set up as the trainer sets it up (device, memory format, optimizers, compile).

    ``compile_backend`` other than the trainer's inductor is for dry runs: ``aot_eager`` traces the
    same graphs (dynamo and AOTAutograd, graph breaks included) without generating kernels."""
    from cyclegan.recipes import create_model
    from cyclegan.training.trainer import channels_last_weights

    model = create_model(config, is_train=True)
    model.to(device)
    if channels_last and channels_last_weights(device):  # else only the batches, as in training
        model.to(memory_format=torch.channels_last)
    model.build_optimizers()
    if compile:
        model.wrap_step_modules(functools.partial(torch.compile, backend=compile_backend))
    return model, Precision(precision, device)


def our_step_fn(
    model: Any, precision: Precision, channels_last: bool
) -> Callable[[torch.Tensor, torch.Tensor], dict]:
    def step(real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        if channels_last:  # the trainer converts each batch as it reaches the device; so does the timing
            real_A = real_A.contiguous(memory_format=torch.channels_last)
            real_B = real_B.contiguous(memory_format=torch.channels_last)
        return model.training_step({"A": real_A, "B": real_B}, precision).losses

    return step


class ConcurrentCyclesStep:
    """Our model's step with its two cycles run at once, one intra-op thread each (issue 29).

    A → B → A (G_A, then G_B, scored by D_A) and B → A → B (G_B, then G_A, scored by D_B) do not
    depend on each other until the loss sum: each runs forward, losses and ``autograd.grad`` in its
    own thread, and their gradients are added in a fixed order (deterministic). Then D_A's and D_B's
    losses and backward, one per thread (disjoint weights). The alternative to ``--batch_generator_calls``
    on small CPUs, where a step is mostly per-operator overhead: two single-threaded chains instead of
    one chain of two-thread operators. Same losses as the model's step (checked in
    ``tests/test_benchmarks.py``); the cycle, identity and GAN terms only, no colour or body terms.
    """

    def __init__(self, model: Any, precision: Precision, threads_per_cycle: int = 1) -> None:
        from concurrent.futures import ThreadPoolExecutor

        options = model.options
        if options.lambda_colour > 0 or options.lambda_body > 0:
            raise ValueError("the concurrent step has no colour or body terms: set lambda_colour / lambda_body to 0")
        self.model, self.precision = model, precision
        # Both cycles differentiate against G_A's and G_B's weights, in this order (their sum's order).
        self.generator_params = [p for name in ("G_A", "G_B") for p in model.nets[name].parameters()]
        # set_num_threads is per thread under OpenMP: each worker sets its own once.
        self.pool = ThreadPoolExecutor(2, initializer=torch.set_num_threads, initargs=(threads_per_cycle,))

    def _cycle(self, G_first: nn.Module, G_second: nn.Module, D: nn.Module, real: torch.Tensor,
               real_other: torch.Tensor, lambda_cycle: float, lambda_other: float) -> tuple:
        from cyclegan.losses import cycle_loss, identity_loss

        model, options = self.model, self.model.options
        with self.precision.autocast():  # autocast is per thread
            fake = G_first(real)
            rec = G_second(fake)
            losses = [model.adversarial(D(fake), True, False), cycle_loss(rec.float(), real.float()) * lambda_cycle]
            if options.lambda_identity > 0:  # G_first should leave an image of its own output domain unchanged
                idt = G_first(real_other)
                losses.append(identity_loss(idt.float(), real_other.float()) * lambda_other * options.lambda_identity)
        grads = torch.autograd.grad(self.precision.scaler.scale(sum(losses)), self.generator_params, allow_unused=True)
        return fake, [loss.detach() for loss in losses], grads

    def _discriminator(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast():
            loss = self.model.discriminator_loss(D, real, fake)
        self.precision.scaler.scale(loss).backward()
        return loss.detach()

    def __call__(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        model, options, precision = self.model, self.model.options, self.precision
        G_A, G_B, D_A, D_B = (model.nets[name] for name in ("G_A", "G_B", "D_A", "D_B"))
        opt_G, opt_D = model.optimizers["G"], model.optimizers["D"]
        set_requires_grad([D_A, D_B], False)
        opt_G.zero_grad(set_to_none=True)
        cycle_A = self.pool.submit(self._cycle, G_A, G_B, D_A, real_A, real_B, options.lambda_A, options.lambda_B)
        cycle_B = self.pool.submit(self._cycle, G_B, G_A, D_B, real_B, real_A, options.lambda_B, options.lambda_A)
        (fake_B, terms_A, grads_A), (fake_A, terms_B, grads_B) = cycle_A.result(), cycle_B.result()
        for param, grad_A, grad_B in zip(self.generator_params, grads_A, grads_B, strict=True):
            present = [g for g in (grad_A, grad_B) if g is not None]
            param.grad = sum(present[1:], present[0]) if present else None
        set_requires_grad([D_A, D_B], True)
        opt_D.zero_grad(set_to_none=True)
        pooled_fake_B, pooled_fake_A = model.fake_B_pool.query(fake_B), model.fake_A_pool.query(fake_A)
        loss_D_A = self.pool.submit(self._discriminator, D_A, real_B, pooled_fake_B)
        loss_D_B = self.pool.submit(self._discriminator, D_B, real_A, pooled_fake_A)
        losses = {"G_A": terms_A[0], "cycle_A": terms_A[1], "G_B": terms_B[0], "cycle_B": terms_B[1],
                  "D_A": loss_D_A.result(), "D_B": loss_D_B.result()}
        if options.lambda_identity > 0:
            losses["idt_A"], losses["idt_B"] = terms_A[2], terms_B[2]
        precision.step(opt_G)
        precision.step(opt_D)
        precision.update()
        return losses


def random_batch(
    bench: BenchConfig, device: torch.device, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    shape_A = (bench.batch_size, bench.input_nc, bench.size, bench.size)
    shape_B = (bench.batch_size, bench.output_nc, bench.size, bench.size)
    real_A = torch.rand(shape_A, generator=generator) * 2 - 1
    real_B = torch.rand(shape_B, generator=generator) * 2 - 1
    return real_A.to(device), real_B.to(device)


# --- FLOPs, peak, memory -------------------------------------------------------------------------


def network_macs(bench: BenchConfig) -> dict[str, int]:
    """MACs per image of one generator and one discriminator at the benchmark size."""
    from cyclegan.networks.inspect import inspect_network

    G = define_G(bench.input_nc, bench.output_nc, bench.ngf, bench.netG, norm=bench.norm)
    D = define_D(bench.output_nc, bench.ndf, bench.netD, norm=bench.norm)
    shape = (1, bench.input_nc, bench.size, bench.size)
    return {
        "G": inspect_network(G, shape, effective=False).macs,
        "D": inspect_network(D, (1, bench.output_nc, bench.size, bench.size), effective=False).macs,
    }


def flops_per_iteration(bench: BenchConfig, macs: dict[str, int]) -> tuple[float, str]:
    """The model FLOPs of one training iteration and the formula, as text."""
    g_passes = 4 + (2 if bench.lambda_identity > 0 else 0)
    forward_macs = g_passes * macs["G"] + 6 * macs["D"]
    flops = 3 * 2 * forward_macs * bench.batch_size
    formula = (
        f"3 × 2 × [({g_passes} G passes × {macs['G'] / 1e9:.4g} GMAC) "
        f"+ (6 D passes × {macs['D'] / 1e9:.4g} GMAC)]"
        f" × batch {bench.batch_size} = {flops / 1e9:.4g} GFLOP"
    )
    return float(flops), formula


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def conv_peak(device: torch.device, dtype: torch.dtype, batch: int, size: int, repeats: int = 10) -> float:
    """FLOP/s of the best of ``repeats`` large 3×3 convolutions (256 → 256 channels): the peak.

    A convolution, not a matmul: the networks' convolutions run on oneDNN, while torch.matmul on a
    CPU goes to the BLAS (MKL in the torch wheels), which on the 2-core AMD EPYC here reached 0.20
    fp32 TFLOP/s against 0.36–0.47 for 3×3 convolutions: a matmul peak put the fp32 baseline above
    100 % of "peak".
    """
    channels = 256
    x = torch.randn(batch, channels, size, size, device=device).to(dtype)
    w = torch.randn(channels, channels, 3, 3, device=device).to(dtype)
    with torch.no_grad():
        torch.nn.functional.conv2d(x, w, padding=1)  # warm-up: library initialisation, caches, clocks
        synchronize(device)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            torch.nn.functional.conv2d(x, w, padding=1)
            synchronize(device)
            best = min(best, time.perf_counter() - start)
    return 2 * batch * size * size * channels * channels * 9 / best


def measure_peaks(device: torch.device, batch: int, size: int) -> dict[str, float]:
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    if device.type == "cuda":
        dtypes["fp16"] = torch.float16
    return {name: conv_peak(device, dtype, batch, size) for name, dtype in dtypes.items()}


def peak_memory_mib(device: torch.device) -> float:
    """Peak memory of this process: CUDA's max allocated, else the peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mib()


def peak_rss_mib() -> float:
    """The peak resident set size of this process's memory, in MiB.

    On Linux from ``VmHWM`` in /proc/self/status, not ``ru_maxrss``: the kernel carries
    ``ru_maxrss`` over from the parent into a child started by fork/exec, so a worker process would
    report at least its parent's size at the spawn (every variant of a benchmark then "peaks" alike).
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


# /proc/cpuinfo flag → the name people know, most capable last; AVX-512 BF16 / AMX are what make
# bf16 autocast pay (cyclegan.core.precision), AVX-512 VNNI / AMX int8 what speeds up int8 inference.
ISA_FLAGS = (
    ("avx2", "AVX2"),
    ("fma", "FMA"),
    ("avx512f", "AVX-512"),
    ("avx512_vnni", "AVX-512 VNNI"),
    ("avx512_bf16", "AVX-512 BF16"),
    ("amx_bf16", "AMX-BF16"),
    ("amx_int8", "AMX-INT8"),
)


def cpu_isa(cpuinfo_flags: str | None = None) -> str:
    """The CPU's vector ISA from /proc/cpuinfo's flags, e.g. ``AVX2, FMA, AVX-512, AVX-512 BF16``.

    ``cpuinfo_flags``: the space-separated flags (default: read from /proc/cpuinfo); ``unknown ISA``
    where they cannot be read (not Linux).
    """
    if cpuinfo_flags is None:
        try:
            with open("/proc/cpuinfo") as handle:
                cpuinfo_flags = next((line.split(":", 1)[1] for line in handle if line.startswith("flags")), "")
        except OSError:
            cpuinfo_flags = ""
    flags = set(cpuinfo_flags.split())
    names = [name for flag, name in ISA_FLAGS if flag in flags]
    return ", ".join(names) if names else "unknown ISA"


def machine_description(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    # What torch's kernels may use: ATEN_CPU_CAPABILITY=avx2 emulates an AVX2 machine on a newer one.
    capability = torch.backends.cpu.get_cpu_capability()
    return (
        f"{cpu} [{cpu_isa()}; torch kernels {capability}], {threads} thread(s) of {os.cpu_count()} CPU(s) "
        f"(torch {torch.__version__})"
    )


# --- statistics and output -----------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    if path:
        with open(path, "w") as handle:
            json.dump(payload, handle, indent=2)
            handle.write("\n")


def bench_from_args(args: Any) -> BenchConfig:
    """The named config with the command line's overrides (--size --ngf --ndf --netG --batch_size ...)."""
    bench = BenchConfig(**asdict(CONFIGS[args.config]))
    for key in ("size", "ngf", "ndf", "netG", "netD", "batch_size", "lambda_identity"):
        value = getattr(args, key, None)
        if value is not None:
            setattr(bench, key, value)
    return bench


def add_config_arguments(parser: Any) -> None:
    parser.add_argument(
        "--config",
        choices=sorted(CONFIGS),
        default="cpu",
        help="cpu: the quick preset's sizes (64×64, resnet_6blocks); paper: 256×256 ngf/ndf 64 resnet_9blocks",
    )
    parser.add_argument("--size", type=int, default=None, help="override the image side")
    parser.add_argument("--ngf", type=int, default=None, help="override ngf")
    parser.add_argument("--ndf", type=int, default=None, help="override ndf")
    parser.add_argument("--netG", default=None, help="override the generator")
    parser.add_argument("--netD", default=None, help="override the discriminator")
    parser.add_argument("--batch_size", type=int, default=None, help="override the batch size")
    parser.add_argument("--lambda_identity", type=float, default=None, help="override λ_identity")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads (default: torch's, which follows OMP_NUM_THREADS)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny iteration counts: checks that it runs, not timing"
    )
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
