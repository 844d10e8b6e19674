"""Help texts of the flags that the CLI builds from the config dataclasses (``add_dataclass_flags``),
by field name: the CLI reference in the documentation is generated from them, and
``tests/test_docs.py`` fails when a flag has none. The wording follows the reference's options
(``options/*_options.py``, CUT's ``cut_model.py``) where it has the flag.
"""

from __future__ import annotations

HELP = {
    # --- data ---
    "dataroot": "folder with trainA/ trainB/ (testA/ testB/) as in the reference; train/ of A|B files for "
                "pix2pix; train/ of photos for colorization",
    "dataset_mode": "unaligned (cycle_gan, cut) | aligned (pix2pix: A|B side by side) | single | colorization "
                    "(photos split into L and ab)",
    "direction": "AtoB | BtoA: BtoA swaps the domains (the right half of an A|B file becomes the input)",
    "phase": "which split folders to read: <dataroot>/<phase>A and <phase>B, or <dataroot>/<phase>",
    "input_nc": "channels of the input images: 3 for RGB, 1 for greyscale",
    "output_nc": "channels of the output images: 3 for RGB, 1 for greyscale",
    "preprocess": "resize_and_crop | crop | scale_width | scale_width_and_crop | none",
    "load_size": "scale images to this size (before cropping)",
    "crop_size": "then crop to this size: the size the networks train at",
    "no_flip": "do not flip the images left-right for data augmentation",
    "serial_batches": "take the images in order (and pair B with A by index) instead of at random",
    "max_dataset_size": "use at most this many images per folder",
    "batch_size": "images per batch (per process under torchrun)",
    "num_threads": "data-loading worker processes (0: load in the main process)",
    "max_bad_fraction": "stop, listing them, when more than this fraction of a folder's files cannot be decoded "
                        "(fewer are skipped with a warning)",
    # --- model ---
    "model": "cycle_gan (unpaired) | pix2pix (paired, aligned A|B images) | cut (CUT / FastCUT, unpaired) | "
             "colorization (photos: L to ab); each sets its own defaults",
    "netG": "generator: resnet_9blocks | resnet_6blocks | unet_256 | unet_128",
    "netD": "discriminator: basic (70×70 PatchGAN) | n_layers | pixel",
    "ngf": "generator filters in the last convolution (the width of G)",
    "ndf": "discriminator filters in the first convolution (the width of D)",
    "n_layers_D": "discriminator layers, with --netD n_layers",
    "norm": "instance | batch | none | syncbatch",
    "init_type": "weight initialisation: normal | xavier | kaiming | orthogonal",
    "init_gain": "scale of the normal, xavier and orthogonal initialisations",
    "padding_type": "padding of the ResNet generator's blocks: reflect | replicate | zero",
    "residual_output": "ResNet G computes tanh(h(x) + atanh(x)), h's last conv zeroed: it starts as the identity "
                       "(ours; for colour looks with --norm none --init_type kaiming)",
    "colour_branch": "width of a per-pixel colour map (1x1 convolutions) added beside the ResNet body; it learns "
                     "colour remaps from every pixel at once (ours; needs --residual_output; 0: none)",
    "body_scale": "multiplies the ResNet body's output in a --residual_output G: below 1 slows the body's "
                  "changes (texture, noise) and leaves colour changes to --colour_branch (ours; 1: as is)",
    "colour_warmup_steps": "steps of a fit of the --colour_branch to the target domain's colours before "
                           "training, from the identity, a channel permutation or per-channel histogram matching, "
                           "whichever ends closer; left at the identity where the domains differ in texture "
                           "(ours; 0: none)",
    "grey_output_for_grey": "a G whose target domain is greyscale on the first batch outputs grey (its channels "
                            "averaged, kept with the weights); needs --colour_branch (ours; quick preset: on)",
    "gan_mode": "lsgan | vanilla | wgangp (gradient penalty applied) | hinge",
    "pool_size": "size of the buffer of earlier generated images the discriminators also see (0: none)",
    "lambda_gp": "weight of the gradient penalty (--gan_mode wgangp)",
    "gp_type": "where the gradient penalty is taken: mixed (between real and fake) | real | fake",
    "gp_constant": "the gradient norm the penalty pulls towards",
    "real_label": "the discriminator's target for real images (below 1: one-sided label smoothing)",
    "fake_label": "the discriminator's target for generated images",
    # --- optimisation ---
    "lr": "initial learning rate of Adam",
    "beta1": "Adam's beta1 (momentum)",
    "beta2": "Adam's beta2",
    "n_epochs": "epochs at the initial learning rate",
    "n_epochs_decay": "epochs over which the learning rate decays to zero after them",
    "epoch_count": "the number of the first epoch (the learning-rate schedule counts from it)",
    "lr_policy": "linear | step | plateau | cosine",
    "lr_decay_iters": "with --lr_policy step: multiply the learning rate by 0.1 every this many epochs",
    "max_iters": "stop after this many iterations in total",
    "schedule_over_max_iters": "with --max_iters: epoch counts from the data set's size, so that the learning "
                               "rate decays over the second half of the run (the presets set it)",
    "ema_decay": "keep an exponential moving average of the translating networks' weights with this decay "
                 "(e.g. 0.995; 0: off): validation, best, test, translate and export use it",
    # --- runtime ---
    "name": "run name: checkpoints go to <checkpoints_dir>/<name>",
    "checkpoints_dir": "where run folders are kept",
    "device": "auto | cpu | cuda | cuda:N (replaces --gpu_ids)",
    "seed": "seed every random number generator (data order and augmentation included)",
    "deterministic": "use deterministic algorithms (bitwise-reproducible runs on CPU)",
    "print_freq": "images between lines of loss_log.txt and the console (each line: the mean over them)",
    "display_freq": "images between updates of the training page's pictures",
    "save_latest_freq": "images between `latest` checkpoints, or a time such as 10m",
    "save_epoch_freq": "epochs between numbered checkpoints",
    "eval_freq": "epochs between validations on valA / valB (when those folders exist)",
    "checkpoint_every": "also save `latest` at least this often (e.g. 10m), so kill -9 loses at most that",
    "keep_last": "keep only the newest K numbered epoch checkpoints",
    "max_nonfinite_steps": "stop, with a checkpoint, after this many steps in a row with non-finite losses "
                           "(a single one is skipped)",
    "precision": "auto | fp32 | bf16 | fp16 (auto: bf16 where native, else fp32; fp16: CUDA only)",
    "channels_last": "channels-last memory format (on a CPU for the batches only); faster on some GPUs",
    "compile": "torch.compile the networks (the first steps compile, which takes minutes on a CPU)",
    "torch_threads": "torch's intra-op threads (0: torch's default); --tune picks it by measurement",
    "gradient_checkpointing": "recompute the generators' activations in the backward pass: less memory for "
                              "large crops, more time",
    "tensorboard": "write TensorBoard logs to <run>/tensorboard/",
    "progress_bar": "show the console progress bar",
    "verbose": "debug logging",
    # --- cycle_gan ---
    "lambda_A": "cycle_gan: weight of the cycle loss A → B → A",
    "lambda_B": "cycle_gan: weight of the cycle loss B → A → B",
    "lambda_identity": "identity loss weight as a fraction of lambda_A / lambda_B (reference semantics)",
    "lambda_cycle_far": "cycle weight instead of --lambda_A / --lambda_B when the first batch's A and B colours lie "
                        "far apart (a map far from the identity); 0: off (ours; quick preset: 2)",
    "lambda_body_near": "--lambda_body instead when the first batch's A and B colours lie close (a map near the "
                        "identity) and, with --colour_warmup_steps, their fine detail does not differ (a texture "
                        "map keeps --lambda_body); 0: off (ours; quick preset: 20)",
    "lambda_body": "weight of an L1 penalty on what a --residual_output G's body adds to its colour map: the body "
                   "pays for each change a colour map could not make (ours; 0: off)",
    "lambda_colour": "weight of a sliced Wasserstein distance between generated and real pixel colours (ours; "
                     "0: off, as the reference)",
    "batch_generator_calls": "cycle_gan: run G_B on real_B and fake_B in one call (same result with instance "
                             "norm or none; batch norm keeps separate calls)",
    "batch_discriminator_calls": "cycle_gan: score real and pooled fake images in one discriminator call",
    "identity_warmup_steps": "cycle_gan: steps of an L1 fit of each generator to the identity before training "
                             "(0: the reference's random start)",
    # --- pix2pix, colorization ---
    "lambda_L1": "pix2pix, colorization: weight of the L1 to the true B",
    # --- cut ---
    "CUT_mode": "cut: CUT (identity NCE) | FastCUT (flip-equivariance, lambda_NCE 10, 150 + 50 epochs)",
    "lambda_GAN": "cut: weight of the GAN loss GAN(G(X))",
    "lambda_NCE": "cut: weight of the PatchNCE loss NCE(G(X), X) (default: 1 for CUT, 10 for FastCUT)",
    "nce_idt": "cut: also PatchNCE between G(Y) and Y, the identity term (default: on for CUT, off for FastCUT)",
    "nce_layers": "cut: the encoder layers PatchNCE compares, comma-separated",
    "nce_includes_all_negatives_from_minibatch": "cut: draw negatives from every image of the batch, not only "
                                                 "the same image (CUT's single-image setting)",
    "netF": "cut: how patches are sampled and projected: mlp_sample | sample | reshape",
    "netF_nc": "cut: channels of the projection MLP's output",
    "nce_T": "cut: temperature of the PatchNCE loss",
    "num_patches": "cut: patches sampled per layer",
    "flip_equivariance": "cut: flip the input half the time (default: on for FastCUT, off for CUT)",
    "normG": "cut: the generator's norm: instance | batch | none",
    "normD": "cut: the discriminator's norm: instance | batch | none",
    "no_antialias": "cut: plain strided down-sampling instead of blur-then-subsample",
    "no_antialias_up": "cut: plain transposed-convolution up-sampling instead of the blurred one",
    "batch_nce_calls": "cut: run the identity term's encoder passes with the main term's (one patch draw "
                       "for both)",
    "batch_real_fake_calls": "cut: score fake and real images in one discriminator call",
    "nce_keys_after_colour": "cut: PatchNCE's keys from the colour branch's output for the input (G without its "
                             "body), not from the input: a global colour map is not a change of content",
}
