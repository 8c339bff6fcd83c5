"""Inference copies of frozen backbones: batch norm folded into the convolution before it.

A frozen backbone's ``BatchNorm2d`` in eval mode is an affine map per channel, so it can be merged
into the preceding ``Conv2d``'s weight and bias: one pass over the feature map instead of two.
On the memory-bound early layers of MobileNetV2 that matters (fcn-cascade's prefix ran 1.5x faster
on 2 CPU threads). The folded copy is for inference only: model files keep the original modules
(torchvision's state-dict keys), and the copy is rebuilt from them when needed.
"""

from __future__ import annotations

import copy
import weakref

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """An eval-mode deep copy of ``module`` where every ``Conv2d`` directly followed by a
    ``BatchNorm2d`` in the same ``nn.Sequential`` is replaced by one conv (and the norm by
    ``nn.Identity``). Pairs wired some other way (ResNet's ``conv1``/``bn1`` attributes) are left
    as they are; the result computes the same function up to float rounding."""
    out = copy.deepcopy(module).eval()
    for seq in [m for m in out.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                seq._modules[a] = fuse_conv_bn_eval(conv, bn)
                seq._modules[b] = nn.Identity()
    return out.requires_grad_(False)


# module -> (tensor versions/devices/dtypes, memory format, folded copy); weak keys: a dropped
# backbone takes its copy with it
_FOLDED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def folded(module: nn.Module, *, channels_last: bool = False) -> nn.Module:
    """:func:`fold_batchnorm` of ``module``, cached: rebuilt only when ``module``'s tensors change
    in place (their version counters), move or change dtype, so scoring pays for the fold once.
    ``channels_last``: the copy's 4-D weights in that layout (for inputs in that layout)."""
    tensors = [*module.parameters(), *module.buffers()]
    key = ([(t._version, t.device, t.dtype) for t in tensors], channels_last)
    hit = _FOLDED.get(module)
    if hit is None or hit[0] != key:
        copy_ = fold_batchnorm(module)
        if channels_last:
            copy_ = copy_.to(memory_format=torch.channels_last)
        hit = _FOLDED[module] = (key, copy_)
    return hit[1]
