"""Reference models, defined in PyTorch and sized for tiny inputs.

`definition_source(arch)` is part of each trained model's cache key: changing a class retrains it.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from harness.core.errors import ConfigError, unknown_name


def conv_bn_relu(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Three 3x3 convolutions and a classifier: the smallest useful image model."""

    def __init__(self, in_channels: int, n_classes: int, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, width),
            conv_bn_relu(width, 2 * width),
            nn.MaxPool2d(2),
            conv_bn_relu(2 * width, 2 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(2 * width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or strided 1x1) shortcut, as in MLPerf Tiny's ResNet-8."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(c_in, c_out, stride=stride),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet8(nn.Module):
    """MLPerf Tiny image-classification ResNet-8 (stem 16, stacks 16/32/64), adapted to the input."""

    def __init__(self, in_channels: int, n_classes: int, width: int = 16):
        super().__init__()
        self.stem = conv_bn_relu(in_channels, width)
        self.stacks = nn.Sequential(
            ResidualBlock(width, width, 1),
            ResidualBlock(width, 2 * width, 2),
            ResidualBlock(2 * width, 4 * width, 2),
        )
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(4 * width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.stacks(self.stem(x))))


class DSCNN(nn.Module):
    """Depthwise-separable CNN (MLPerf Tiny DS-CNN / MobileNet-v1 style): a strided stem, then blocks
    of a 3x3 depthwise and a 1x1 pointwise convolution."""

    def __init__(self, in_channels: int, n_classes: int, width: int = 64, n_blocks: int = 4):
        super().__init__()
        layers = [conv_bn_relu(in_channels, width, stride=2)]
        for _ in range(n_blocks):
            layers += [conv_bn_relu(width, width, groups=width), conv_bn_relu(width, width, kernel=1)]
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# arch name -> (class, everything its definition depends on)
ARCHS: dict[str, tuple[type[nn.Module], tuple]] = {
    "small_cnn": (SmallCNN, (conv_bn_relu,)),
    "resnet8": (ResNet8, (conv_bn_relu, ResidualBlock)),
    "ds_cnn": (DSCNN, (conv_bn_relu,)),
}


def build_model(arch: str, in_channels: int, n_classes: int, params: dict | None = None,
                where: str = "") -> nn.Module:
    if arch not in ARCHS:
        raise unknown_name("model arch", arch, ARCHS, where)
    cls = ARCHS[arch][0]
    check_params(arch, params or {}, where)
    try:
        return cls(in_channels, n_classes, **(params or {}))
    except TypeError as exc:
        accepted = [p for p in inspect.signature(cls).parameters if p not in ("in_channels", "n_classes")]
        raise unknown_name(f"parameter for {arch} ({exc})", next(iter(params or {}), ""), accepted,
                           where) from None


# the largest value a size parameter may take (far past anything an edge board runs; a typo's 10**9 would
# otherwise allocate until the machine gives up)
MAX_SIZE = 4096


def check_params(arch: str, params: dict, where: str = "") -> None:
    """[model.params]: every parameter is one of the arch's constructor arguments and, as they are all
    sizes (width, n_blocks), an integer from 1 to MAX_SIZE."""
    cls = ARCHS[arch][0]
    accepted = [p for p in inspect.signature(cls).parameters if p not in ("in_channels", "n_classes")]
    for key, value in params.items():
        if key not in accepted:
            raise unknown_name(f"parameter for {arch}", key, accepted, where)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE:
            place = f"{where}: " if where else ""
            raise ConfigError(f"{place}model.params.{key} = {value!r}: accepted: an integer from 1 to "
                              f"{MAX_SIZE}")


# What a model's definition needs on a device: torch alone (the board may run Python 3.8).
DEVICE_SOURCE_HEADER = "from __future__ import annotations\n\nimport torch\nfrom torch import nn\n\n\n"


def device_spec(spec: dict) -> tuple[dict, str]:
    """How a device rebuilds the model for eager PyTorch: the class's name and keyword arguments, and a
    standalone source that defines it (it travels with the artifact: the torch backend knows no model by
    name, and a board needs nothing of edgebench but the agent)."""
    cls = ARCHS[spec["arch"]][0]
    kwargs = {"in_channels": spec["in_channels"], "n_classes": spec["n_classes"], **(spec.get("params") or {})}
    return {"class": cls.__qualname__, "kwargs": kwargs}, DEVICE_SOURCE_HEADER + definition_source(spec["arch"])


def definition_source(arch: str) -> str:
    cls, depends = ARCHS[arch]
    return "\n".join(inspect.getsource(obj) for obj in (cls, *depends))
