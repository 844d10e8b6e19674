"""``--model cut``'s own options: the TrainConfig section ``cut``, registered here."""

from __future__ import annotations

from dataclasses import dataclass

from cyclegan.config import register_section


@register_section("cut")
@dataclass
class CUTOptions:
    """``--model cut``: CUT's own flags (names and defaults of taesungp/contrastive-unpaired-translation).

    ``None``: the ``--CUT_mode`` default (CUT: lambda_NCE 1, nce_idt on, no flip; FastCUT: 10, off,
    flip). The networks' shared options (netG, ngf, init_type ...) stay in ``model``; CUT names its
    norms per network, so ``normG`` / ``normD`` live here. The recipe builds a
    ``cyclegan.recipes.cut.objective.CUTConfig`` from both sections.
    """

    CUT_mode: str = "CUT"  # CUT | FastCUT
    lambda_GAN: float = 1.0
    lambda_NCE: float | None = None
    nce_idt: bool | None = None
    nce_layers: str = "0,4,8,12,16"
    nce_includes_all_negatives_from_minibatch: bool = False
    netF: str = "mlp_sample"  # mlp_sample | sample | reshape
    netF_nc: int = 256
    nce_T: float = 0.07
    num_patches: int = 256
    flip_equivariance: bool | None = None
    normG: str = "instance"
    normD: str = "instance"
    no_antialias: bool = False
    no_antialias_up: bool = False
    # Run the identity term's encoder passes with the main term's, one patch draw for both (each
    # term is still CUT's, up to which positions were drawn); off: CUT's separate calls.
    batch_nce_calls: bool = True
    # Score fake and real images in one D call (same scores with instance norm or none).
    batch_real_fake_calls: bool = True
    # Ours (the quick preset's): PatchNCE's keys from G's colour branch alone (G without its body) on
    # the input, not from the input itself. A global colour map (a negative, a channel swap) changes no
    # content, but its raw pixels and early features differ from the input's, so keys of the input pull
    # G back towards the identity. Needs --colour_branch.
    nce_keys_after_colour: bool = False
