"""How a translating network meets images: the one place that turns pictures into its input and its
output back into pictures.

Every door that hands a network an image (``test``, ``translate``, ``serve``, video, int8
calibration) goes through a recipe's :class:`ImageCodec`, so a recipe whose network does not map
pictures to pictures (colorization: L → ab in Lab space) works in all of them without their knowing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageCodec:
    """The default: a grey (1 channel) or RGB (3) image in [0, 1] ↔ the network's [-1, 1].

    ``input_nc`` / ``output_nc``: the network's channels. ``read_nc``: the channels an image is read
    with (1 grey, 3 RGB); ``image_nc``: those of the picture :meth:`decode` returns.
    """

    input_nc: int = 3
    output_nc: int = 3

    @property
    def read_nc(self) -> int:
        return self.input_nc

    @property
    def image_nc(self) -> int:
        return self.output_nc

    @property
    def is_identity(self) -> bool:
        """True when the network's input and output are the pictures themselves (scaled to [-1, 1]):
        callers then pass tensors straight through, bit for bit."""
        return type(self) is ImageCodec

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """N×read_nc×H×W in [0, 1] → the network's N×input_nc×H×W input."""
        return image * 2 - 1

    def decode(self, source: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """The network's input and output → N×image_nc×H×W in [0, 1]."""
        return (output.clamp(-1, 1) + 1) / 2


class CodedNetwork(torch.nn.Module):
    """A network seen through its codec: picture in [-1, 1] → picture in [-1, 1], any codec.

    Tiling, video and the folder pipeline call this as they would a picture-to-picture generator;
    the codec's per-pixel maps do not change the receptive field the tiler measures.
    """

    def __init__(self, net: torch.nn.Module, codec: ImageCodec) -> None:
        super().__init__()
        self.net, self.codec = net, codec
        self.size_multiple = getattr(net, "size_multiple", 1)
        self.train(net.training)

    @property
    def pad_to_multiple(self) -> bool:
        return getattr(self.net, "pad_to_multiple", False)

    @pad_to_multiple.setter
    def pad_to_multiple(self, value: bool) -> None:
        self.net.pad_to_multiple = value

    def forward(self, picture: torch.Tensor) -> torch.Tensor:
        source = self.codec.encode((picture + 1) / 2)
        return self.codec.decode(source, self.net(source)) * 2 - 1


def picture_network(net: torch.nn.Module, codec: ImageCodec) -> torch.nn.Module:
    """``net`` itself for the default codec (bit-exact), else the :class:`CodedNetwork` around it."""
    return net if codec.is_identity else CodedNetwork(net, codec)


def inner_network(net: torch.nn.Module) -> torch.nn.Module:
    """The network inside a :class:`CodedNetwork` (itself otherwise): what the tiler measures the
    receptive field of, since the codec's maps are per pixel and may need the real channel counts."""
    return net.net if isinstance(net, CodedNetwork) else net
