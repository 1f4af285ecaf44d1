"""tinynets:<width>: a small convolutional net whose width comes from the spec (e.g. tinynets:w16).

A plug-in's whole job is to turn a LoadRequest (the parsed spec, a weights file, the task's
sample shape) into an Encoder: the model, its embedding function, its named layers and its
preprocessing. subclassbench does everything else.
"""

from __future__ import annotations

import torch
from torch import nn

from subclassbench.encoders import Encoder, EncoderSource, LoadRequest, read_state_dict
from subclassbench.errors import SubclassbenchError
from subclassbench.preprocessing import Preprocessing


class TinyNet(nn.Module):
    def __init__(self, in_chans: int, width: int, num_classes: int) -> None:
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(in_chans, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1, stride=2), nn.ReLU())
        self.block3 = nn.Sequential(nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(2 * width, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.block3(self.block2(self.block1(x))).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def load(request: LoadRequest) -> Encoder:
    name = request.spec.name
    if not (name.startswith("w") and name[1:].isdigit() and 1 <= int(name[1:]) <= 512):
        raise SubclassbenchError(f"tinynets:{name}: name the width as w<1..512>, e.g. tinynets:w16")
    shape = request.sample_shape or (3, 32, 32)
    model = TinyNet(shape[0], int(name[1:]), request.num_classes)
    meta = None
    if request.weights is not None:
        state, meta = read_state_dict(request.weights)  # safetensors, or a torch file read without pickles
        model.load_state_dict(state)
    return Encoder(
        spec=f"tinynets:{name}",
        source="tinynets",
        arch=f"tinynet_{name}",
        tag=None,
        model=model,
        embed=model.forward_features,
        layer_modules={"block1": model.block1, "block2": model.block2, "block3": model.block3},
        preprocessing=Preprocessing(input_size=tuple(shape)),  # the task's [0, 1] images as they come
        weights=meta,
        pretrained=meta is not None,
    )


SOURCE = EncoderSource("tinynets", load, random_init=False, usage="tinynets:w<width>  an example plug-in")
