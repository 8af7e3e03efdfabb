"""An independent PyTorch forward pass of TDN, written from the authors' code read as
documentation: github.com/MCG-NJU/TDN, ops/tdn_net.py `TDN_Net`, ops/base_module.py
`mSEModule`, `ShiftModule`, `FBResNet`, ops/models.py `TSN` wrapper with `new_fc`.

Two revisions of that code (`revision`):
- "2021": commit bcf28d9 (2021-03-05, their issue #6), unchanged in ops/ up to a7c7e9b
  (2022-09-17, the newest): in `mSEModule.forward` the backward full-scale branch is
  `bn3_smallscale4(conv3_smallscale4(y_backward_smallscale4))`, the backward difference;
  `TDN_Net` registers the unused stem copy once (`conv1_temp`).
- "2020": commit c5c5b10 (2020-12-26, the first release): that line reads the *forward*
  branch's output (`conv3_smallscale4(y_forward_smallscale4)`, after the forward line has
  overwritten it), and `TDN_Net` registers the stem copy as `conv1_temp` and `conv1_temp1`
  (one module, so their state_dicts hold both keys).

Module names reproduce the authors' state_dict keys (`module.base_model.layer2_bak.0.mse.conv1.weight`,
`module.new_fc.weight`, ...). Only the parity tests import it (torch is optional).
"""

import torch
from torch import nn
from torch.nn import functional as F

REVISIONS = ("2021", "2020")


class LongTermTDM(nn.Module):
    """L-TDM (`mSEModule`): reduction 16, shared depthwise alignment, three branches at 1/3."""

    def __init__(self, channels, num_segments, revision="2021"):
        super().__init__()
        assert revision in REVISIONS, revision
        r = channels // 16
        self.t = num_segments
        self.revision = revision
        self.conv1 = nn.Conv2d(channels, r, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(r)
        self.conv2 = nn.Conv2d(r, r, 3, padding=1, groups=r, bias=False)
        self.conv3 = nn.Conv2d(r, channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)
        self.conv3_smallscale2 = nn.Conv2d(r, r, 3, padding=1, bias=False)
        self.bn3_smallscale2 = nn.BatchNorm2d(r)
        self.conv3_smallscale4 = nn.Conv2d(r, r, 3, padding=1, bias=False)
        self.bn3_smallscale4 = nn.BatchNorm2d(r)

    def forward(self, x):
        y = self.bn1(self.conv1(x))
        clips = y.view((-1, self.t) + y.shape[1:])
        aligned = self.conv2(y).view((-1, self.t) + y.shape[1:])
        zero = torch.zeros_like(clips[:, :1])
        fwd = torch.cat([aligned[:, 1:] - clips[:, :-1], zero], 1).flatten(0, 1)
        bwd = torch.cat([zero, aligned[:, :-1] - clips[:, 1:]], 1).flatten(0, 1)
        half_f = F.interpolate(self.bn3_smallscale2(self.conv3_smallscale2(F.avg_pool2d(fwd, 2))), fwd.shape[2:])
        half_b = F.interpolate(self.bn3_smallscale2(self.conv3_smallscale2(F.avg_pool2d(bwd, 2))), bwd.shape[2:])
        full_f = self.bn3_smallscale4(self.conv3_smallscale4(fwd))
        # bcf28d9 onwards: the backward difference; c5c5b10: the forward branch's output.
        full_b = self.bn3_smallscale4(self.conv3_smallscale4(bwd if self.revision == "2021" else full_f))
        gate_f = torch.sigmoid(self.bn3(self.conv3((fwd + half_f + full_f) / 3.0))) - 0.5
        gate_b = torch.sigmoid(self.bn3(self.conv3((bwd + half_b + full_b) / 3.0))) - 0.5
        return x + x * (0.5 * gate_f + 0.5 * gate_b)


class Shift(nn.Module):
    """`ShiftModule` (mode "shift"): a learnable depthwise temporal conv, kernel 3."""

    def __init__(self, channels, num_segments):
        super().__init__()
        self.t = num_segments
        self.conv = nn.Conv1d(channels, channels, 3, padding=1, groups=channels, bias=False)

    def forward(self, x):
        nt, c, h, w = x.shape
        y = x.view(nt // self.t, self.t, c, h, w).permute(0, 3, 4, 2, 1).reshape(-1, c, self.t)
        y = self.conv(y).view(nt // self.t, h, w, c, self.t).permute(0, 4, 3, 1, 2)
        return y.reshape(nt, c, h, w)


class Bottleneck(nn.Module):
    """FBResNet bottleneck: conv biases, stride in the 3x3; L-TDM + shift after conv1 if `num_segments`."""

    def __init__(self, inplanes, planes, stride=1, num_segments=None, revision="2021"):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        if num_segments:
            self.mse = LongTermTDM(planes, num_segments, revision)
            self.shift = Shift(planes, num_segments)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride != 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride=stride),
                                            nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        if hasattr(self, "mse"):
            y = self.shift(self.mse(y))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


def _stage(inplanes, planes, count, stride, num_segments=None, revision="2021"):
    blocks = [Bottleneck(inplanes, planes, stride, num_segments, revision)]
    blocks += [Bottleneck(planes * 4, planes, 1, num_segments, revision) for _ in range(count - 1)]
    return nn.Sequential(*blocks)


class TDNNet(nn.Module):
    """`TDN_Net` for ResNet-50: centre frame RGB stem + S-TDM fusions, L-TDM in stages 3-5."""

    def __init__(self, num_segments=8, frames_per_segment=5, counts=(3, 4, 6, 3), revision="2021"):
        super().__init__()
        self.lps = frames_per_segment
        self.alpha, self.beta = (0.5, 0.5) if num_segments == 8 else (0.75, 0.25)
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(64)
        stem_copy = nn.Conv2d(3, 64, 7, stride=2, padding=3)  # registered, unused in forward
        self.conv1_temp = stem_copy
        if revision == "2020":
            self.conv1_temp1 = stem_copy
        self.conv1_5 = nn.Sequential(nn.Conv2d(3 * (frames_per_segment - 1), 64, 7, stride=2, padding=3, bias=False),
                                     nn.BatchNorm2d(64), nn.ReLU())
        self.resnext_layer1 = _stage(64, 64, counts[0], 1)
        self.layer1_bak = _stage(64, 64, counts[0], 1)
        self.layer2_bak = _stage(256, 128, counts[1], 2, num_segments, revision)
        self.layer3_bak = _stage(512, 256, counts[2], 2, num_segments, revision)
        self.layer4_bak = _stage(1024, 512, counts[3], 2, num_segments, revision)

    def forward(self, x):
        frames = [x[:, 3 * i : 3 * (i + 1)] for i in range(self.lps)]
        diffs = torch.cat([b - a for a, b in zip(frames[:-1], frames[1:])], 1)
        d = F.max_pool2d(self.conv1_5(F.avg_pool2d(diffs, 2)), 3, stride=2, padding=1)
        y = F.max_pool2d(F.relu(self.bn1(self.conv1(frames[self.lps // 2]))), 3, stride=2, padding=1)
        y = self.alpha * y + self.beta * F.interpolate(d, y.shape[2:])
        y = self.layer1_bak(y)
        y = self.alpha * y + self.beta * F.interpolate(self.resnext_layer1(d), y.shape[2:])
        y = self.layer4_bak(self.layer3_bak(self.layer2_bak(y)))
        return F.adaptive_avg_pool2d(y, 1).flatten(1)


class TDN(nn.Module):
    """The authors' `TSN` wrapper: `base_model` features, dropout, `new_fc` per segment, averaged."""

    def __init__(self, num_classes, num_segments=8, frames_per_segment=5, revision="2021"):
        super().__init__()
        self.t, self.lps = num_segments, frames_per_segment
        self.base_model = TDNNet(num_segments, frames_per_segment, revision=revision)
        self.new_fc = nn.Linear(2048, num_classes)

    def forward(self, clip):
        """`clip` [B, T * L, 3, H, W] (segment-major) -> logits [B, K]."""
        b = clip.shape[0]
        x = clip.reshape((b * self.t, 3 * self.lps) + tuple(clip.shape[-2:]))
        return self.new_fc(self.base_model(x)).view(b, self.t, -1).mean(1)


def load_imagenet(tdn, state):
    """The authors' ImageNet start (`tdn_net(pretrained=True)`): two ImageNet ResNets, each
    loaded from torchvision's `state` non-strictly (so conv biases, L-TDM and shift modules keep
    their own init). The first gives conv1/bn1 and `layer{1-4}_bak`, the second `resnext_layer1`
    and the unused `conv1_temp`; `conv1_5`'s kernel is conv1's averaged over RGB and expanded to
    its input channels (BN of `conv1_5` untouched). `state`: {torchvision key: tensor}."""
    net = tdn.base_model
    renamed = {}
    for key, value in state.items():
        module, _, rest = key.partition(".")
        if module in ("conv1", "bn1"):
            renamed[key] = value
        if module == "conv1":
            renamed[f"conv1_temp.{rest}"] = value
        if module.startswith("layer"):
            renamed[f"{module}_bak.{rest}"] = value
        if module == "layer1":
            renamed[f"resnext_layer1.{rest}"] = value
    result = net.load_state_dict(renamed, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys[:3]
    stem = net.conv1_5[0]
    with torch.no_grad():
        mean = state["conv1.weight"].mean(dim=1, keepdim=True)
        stem.weight.copy_(mean.expand(-1, stem.in_channels, -1, -1))
    return tdn


def randomize_batch_norm(module, seed=0):
    """Non-trivial BN statistics and affine parameters, so that a wrong mapping shows."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = torch.rand(c, generator=g) + 0.5
            m.bias.data = torch.randn(c, generator=g) * 0.1
            m.running_mean.data = torch.randn(c, generator=g) * 0.1
            m.running_var.data = torch.rand(c, generator=g) + 0.5
    return module
