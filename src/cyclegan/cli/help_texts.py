"""Help texts of the flags that the CLI builds from the config dataclasses (``add_dataclass_flags``),
by field name: the CLI reference in the documentation is generated from them."""

from __future__ import annotations

HELP = {
    "residual_output": "ResNet G computes tanh(h(x) + atanh(x)), h's last conv zeroed: it starts as the identity "
                       "(ours; for colour looks with --norm none --init_type kaiming)",
    "dataroot": "folder with trainA/ trainB/ (testA/ testB/) as in the reference",
    "name": "run name: checkpoints go to <checkpoints_dir>/<name>",
    "model": "cycle_gan (unpaired) | pix2pix (paired, aligned A|B images) | cut (CUT / FastCUT, unpaired); "
             "each sets its own defaults",
    "CUT_mode": "cut: CUT (identity NCE) | FastCUT (flip-equivariance, lambda_NCE 10, 150 + 50 epochs)",
    "netG": "resnet_9blocks | resnet_6blocks | unet_256 | unet_128",
    "netD": "basic (70×70 PatchGAN) | n_layers | pixel",
    "norm": "instance | batch | none | syncbatch",
    "gan_mode": "lsgan | vanilla | wgangp (gradient penalty applied) | hinge",
    "lambda_identity": "identity loss weight as a fraction of lambda_A / lambda_B (reference semantics)",
    "lambda_L1": "pix2pix: weight of the L1 to the true B",
    "dataset_mode": "unaligned (cycle_gan) | aligned (pix2pix: A|B side by side) | single",
    "preprocess": "resize_and_crop | crop | scale_width | scale_width_and_crop | none",
    "lr_policy": "linear | step | plateau | cosine",
    "precision": "auto | fp32 | bf16 | fp16 (auto: bf16 where native, else fp32; fp16: CUDA only)",
    "device": "auto | cpu | cuda | cuda:N (replaces --gpu_ids)",
    "torch_threads": "torch's intra-op threads (0: torch's default); --tune picks it by measurement",
    "max_iters": "stop after this many iterations in total",
    "ema_decay": "keep an exponential moving average of the translating networks' weights with this decay "
                 "(e.g. 0.995; 0: off): validation, best, test, translate and export use it",
    "save_latest_freq": "images between `latest` checkpoints, or a time such as 10m",
    "checkpoint_every": "also save `latest` at least this often (e.g. 10m), so kill -9 loses at most that",
    "keep_last": "keep only the newest K numbered epoch checkpoints",
    "max_dataset_size": "use at most this many images per folder",
    "seed": "seed every random number generator (data order and augmentation included)",
    "deterministic": "use deterministic algorithms (bitwise-reproducible runs on CPU)",
}
