"""Independent PyTorch reference networks for the conversion parity tests.

Written here from the published descriptions, read as documentation (not copied):
- torchvision's ResNet (torchvision/models/resnet.py, "ResNet v1.5": the stride of a
  bottleneck sits in its 3x3 conv; module names conv1/bn1/layerK.i.convJ/bnJ/
  downsample.0/downsample.1/fc, so the state_dict keys are torchvision's);
- the TSM authors' network (mit-han-lab/temporal-shift-module, ops/models.py and
  ops/temporal_shift.py): a torchvision ResNet whose residual-branch conv1 is wrapped
  by a TemporalShift module (`conv1.net`), in every block, or every other block
  (`n_round = 2`) when layer3 has >= 23 blocks (ResNet-101); fc replaced by dropout and
  a `new_fc` linear layer; segment scores averaged; saved from a DataParallel
  (`module.` prefix) as {"epoch", "arch", "state_dict", "best_prec1"}.
Only imported where torch is installed.
"""

import numpy as np
import torch
from torch import nn

_COUNTS = {10: ("basic", (1, 1, 1, 1)), 18: ("basic", (2, 2, 2, 2)), 50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3))}


class TemporalShiftWrap(nn.Module):
    """Shifts 1/fold_div of the channels to the past and 1/fold_div to the future, then runs `net`."""

    def __init__(self, net, num_segments, fold_div=8):
        super().__init__()
        self.net, self.num_segments, self.fold_div = net, num_segments, fold_div

    def forward(self, x):
        nt, c, h, w = x.shape
        x = x.view(nt // self.num_segments, self.num_segments, c, h, w)
        fold = c // self.fold_div
        out = torch.zeros_like(x)
        out[:, :-1, :fold] = x[:, 1:, :fold]
        out[:, 1:, fold : 2 * fold] = x[:, :-1, fold : 2 * fold]
        out[:, :, 2 * fold :] = x[:, :, 2 * fold :]
        return self.net(out.view(nt, c, h, w))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride):
        super().__init__()
        out = planes * 4
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)  # v1.5: stride in the 3x3
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (self.downsample(x) if self.downsample is not None else x))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNet(nn.Module):
    """torchvision-layout ResNet: `[N, 3, H, W]` -> logits `[N, num_classes]`."""

    def __init__(self, depth=50, num_classes=1000, width=64):
        super().__init__()
        kind, counts = _COUNTS[depth]
        block = Bottleneck if kind == "bottleneck" else BasicBlock
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = width
        for stage, count in enumerate(counts):
            blocks = []
            for b in range(count):
                blocks.append(block(inplanes, width * 2**stage, 2 if (b == 0 and stage > 0) else 1))
                inplanes = width * 2**stage * block.expansion
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)

    def features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in range(1, 5):
            x = getattr(self, f"layer{stage}")(x)
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x):
        return self.fc(self.features(x))


class TSMAuthors(nn.Module):
    """The TSM authors' TSN wrapper around a shifted ResNet: `[B, T, 3, H, W]` -> `[B, K]`."""

    def __init__(self, num_classes, num_segments, depth=50, width=64):
        super().__init__()
        self.num_segments = num_segments
        self.base_model = ResNet(depth, 1000, width)
        n_round = 2 if len(self.base_model.layer3) >= 23 else 1
        for stage in range(1, 5):
            for i, b in enumerate(getattr(self.base_model, f"layer{stage}")):
                if i % n_round == 0:
                    b.conv1 = TemporalShiftWrap(b.conv1, num_segments)
        feature_dim = self.base_model.fc.in_features
        self.base_model.fc = nn.Dropout(0.5)
        self.new_fc = nn.Linear(feature_dim, num_classes)

    def forward(self, x):
        b, t = x.shape[:2]
        base = self.new_fc(self.base_model(x.flatten(0, 1)))
        return base.view(b, t, -1).mean(1)


def randomize_batchnorm(model, seed=0):
    """Non-trivial BN statistics and affine parameters (identity BN would hide mapping errors)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(n, generator=g) * 0.4 + 0.8)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return model


def to_torch_clip(clip):
    """A normalised NumPy clip `[B, T, H, W, C]` -> torch `[B, T, C, H, W]`."""
    return torch.from_numpy(np.ascontiguousarray(clip.transpose(0, 1, 4, 2, 3)))


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())
