"""The Advanced network split into a frozen trunk and a trainable tail, and the served ensemble."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainer_job.ml.backbone import FeatureExtractor, build_backbone, parts
from trainer_job.ml.export import ClassifierNet
from trainer_job.ml.head import LinearHead


def stage_starts(network: Any) -> list[int]:
    """Indices of the blocks that start an MBConv stage (each stage changes the channels)."""
    return [
        i
        for i, block in enumerate(network._blocks)
        if block._block_args.input_filters != block._block_args.output_filters
    ]


def trunk_forward(network: Any, split: int, x: torch.Tensor) -> torch.Tensor:
    x = network._swish(network._bn0(network._conv_stem(x)))
    for block in network._blocks[:split]:
        x = block(x)  # eval mode: no drop connect
    return x


def tail_forward(network: Any, split: int, x: torch.Tensor) -> torch.Tensor:
    """Blocks `split`.. and the head convolution, pooled: as `extract_features` computes them."""
    blocks = network._blocks
    rate = network._global_params.drop_connect_rate
    for index in range(split, len(blocks)):
        x = blocks[index](x, drop_connect_rate=rate * index / len(blocks) if rate else rate)
    pooled: torch.Tensor = network._swish(network._bn1(network._conv_head(x))).mean((2, 3))
    return pooled


def tail_modules(network: Any, split: int) -> list[nn.Module]:
    return [*network._blocks[split:], network._conv_head]


def frozen_tail_forward(tail: nn.ModuleList, network: Any, x: torch.Tensor) -> torch.Tensor:
    """Pooled features through `tail` (blocks, then the head convolution) in eval mode."""
    *blocks, conv_head = tail
    for block in blocks:
        x = block(x)
    pooled: torch.Tensor = network._swish(network._bn1(conv_head(x))).mean((2, 3))
    return pooled


class EnsembleNet(ClassifierNet):
    """The served Advanced model: one trunk (the frozen first stages), two branches on it:
    the fine-tuned last stages with their head (`extractor`, `linear`, as in ClassifierNet)
    and, when `regular` is given, the Regular model on the same trunk: the frozen last stages
    and the other backbones of `regular_backbone` (a stacked name whose primary is the
    extractor's; their features side by side) under the Regular head. The output is the mean
    of the branches' probabilities, over the input and its mirror image when `mirror`.
    forward(x: (N, 3, S, S)) -> probabilities (N, T), exportable like ClassifierNet.
    """

    def __init__(
        self,
        extractor: FeatureExtractor,
        head: LinearHead,
        split: int,
        regular: LinearHead | None,
        mirror: bool,
        regular_backbone: str | None = None,
    ) -> None:
        super().__init__(extractor, head)
        self.split = split
        self.mirror = mirror
        self.regular_tail: nn.ModuleList | None = None
        self.regular_linear: nn.Linear | None = None
        self.companions = nn.ModuleList()
        if regular is not None:
            first, *others = parts(regular_backbone or extractor.name)
            if first != extractor.name:
                raise ValueError(f"the Regular model's {first} is not the tuned {extractor.name}")
            self.backbone = regular_backbone or extractor.name
            fresh: Any = build_backbone(extractor.name, extractor.image_size).network
            self.companions.extend(build_backbone(o, extractor.image_size) for o in others)
            self.regular_tail = nn.ModuleList(tail_modules(fresh, split))
            weight, bias = regular.folded()
            self.regular_linear = nn.Linear(weight.shape[1], weight.shape[0])
            with torch.no_grad():
                self.regular_linear.weight.copy_(torch.from_numpy(weight))
                self.regular_linear.bias.copy_(torch.from_numpy(bias))
        self.eval()
        self.requires_grad_(False)

    def _probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        count = x.shape[0]
        if self.mirror:
            x = torch.cat([x, torch.flip(x, dims=[3])])
        network = self.extractor.network
        trunk = trunk_forward(network, self.split, x)
        probabilities = self._probabilities(self.linear(tail_forward(network, self.split, trunk)))
        if self.regular_tail is not None and self.regular_linear is not None:
            pooled = frozen_tail_forward(self.regular_tail, network, trunk)
            pooled = torch.cat([pooled, *(c(x) for c in self.companions)], dim=1)
            probabilities = 0.5 * (probabilities + self._probabilities(self.regular_linear(pooled)))
        if self.mirror:
            probabilities = 0.5 * (probabilities[:count] + probabilities[count:])
        return probabilities
