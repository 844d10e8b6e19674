"""``cyclegan inspect``'s flags and handler: the command-line side of :mod:`cyclegan.networks.inspect`."""

from __future__ import annotations

import argparse
import json
import sys

from cyclegan.networks import DISCRIMINATORS, GENERATORS, ImageSizeError
from cyclegan.networks.inspect import build_for_inspection, format_table, inspect_network, report_to_json
from cyclegan.networks.layers import NORM_LAYERS, PADDING_LAYERS


def add_inspect_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``cyclegan inspect``, named as in the reference's options."""
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--netG", choices=GENERATORS.names(), help="inspect this generator")
    which.add_argument("--netD", choices=DISCRIMINATORS.names(), help="inspect this discriminator")
    parser.add_argument("--size", type=int, default=256, help="input height = width (default 256)")
    parser.add_argument("--height", type=int, default=None, help="input height (overrides --size)")
    parser.add_argument("--width", type=int, default=None, help="input width (overrides --size)")
    parser.add_argument("--batch_size", type=int, default=1, help="N of the traced input (MACs are per image)")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="how to print the report")
    parser.add_argument("--input_nc", type=int, default=3, help="input channels")
    parser.add_argument("--output_nc", type=int, default=3, help="output channels (generators)")
    parser.add_argument("--ngf", type=int, default=64, help="generator filters in the last convolution")
    parser.add_argument("--ndf", type=int, default=64, help="discriminator filters in the first convolution")
    parser.add_argument("--n_layers_D", type=int, default=3, help="only used with --netD n_layers")
    parser.add_argument("--norm", choices=NORM_LAYERS.names(), default="instance", help="the networks' norm layers")
    parser.add_argument("--padding_type", choices=list(PADDING_LAYERS), default="reflect",
                        help="padding of the ResNet generator's blocks")
    # CycleGAN's default is no dropout (as in training); --dropout adds the layers (names shift).
    parser.add_argument("--no_dropout", dest="no_dropout", action="store_true", default=True,
                        help="no dropout in the generator (the CycleGAN default)")
    parser.add_argument("--dropout", dest="no_dropout", action="store_false",
                        help="build the generator with dropout, as a model trained without --no_dropout")


def run_inspect(args: argparse.Namespace) -> int:
    """Print the report for the parsed flags; 2 with the message on stderr for an unusable size."""
    height = args.height if args.height is not None else args.size
    width = args.width if args.width is not None else args.size
    try:
        net = build_for_inspection(
            netG=args.netG, netD=args.netD, input_nc=args.input_nc, output_nc=args.output_nc, ngf=args.ngf,
            ndf=args.ndf, n_layers_D=args.n_layers_D, norm=args.norm, no_dropout=args.no_dropout,
            padding_type=args.padding_type,
        )
        name = f"netG={args.netG}" if args.netG is not None else f"netD={args.netD}"
        report = inspect_network(net, (args.batch_size, args.input_nc, height, width), network=name)
    except (ImageSizeError, ValueError) as error:  # ImageSizeError is a ValueError; both are user input
        print(f"cyclegan inspect: {error}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(report_to_json(report), indent=2))
    else:
        print(format_table(report), end="")
    return 0


__all__ = ["add_inspect_arguments", "run_inspect"]
