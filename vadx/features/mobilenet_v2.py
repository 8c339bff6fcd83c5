"""MobileNetV2 with torchvision's module layout (``features.0..18``, ``classifier.1``)."""

from __future__ import annotations

from torch import Tensor, nn

# (expansion t, channels c, repeats n, first stride s), the paper's Table 2 as torchvision has it.
_SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
             (6, 160, 3, 2), (6, 320, 1, 1)]


def _act(relu6: bool) -> nn.Module:
    return nn.ReLU6(inplace=True) if relu6 else nn.ReLU(inplace=True)


class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1,
                 relu6: bool = True):
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups,
                                   bias=False),
                         nn.BatchNorm2d(cout), _act(relu6))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int, relu6: bool = True):
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNAct(cin, hidden, 1, relu6=relu6))
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden, relu6=relu6),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """``relu6=False`` uses ReLU, which matches int8-derived weights (whose activations were
    quantised to [0, inf)) more closely than ReLU6; keys are the same either way."""

    def __init__(self, num_classes: int = 1000, relu6: bool = True):
        super().__init__()
        cin = 32
        layers: list[nn.Module] = [ConvBNAct(3, cin, stride=2, relu6=relu6)]
        for t, c, n, s in _SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t, relu6=relu6))
                cin = c
        layers.append(ConvBNAct(cin, 1280, 1, relu6=relu6))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))
        self.out_channels = 1280

    def forward_features(self, x: Tensor) -> Tensor:
        """The last feature map, ``[N, 1280, H/32, W/32]``."""
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(x.flatten(1))
