"""Independent reference networks for the layout tests, written the way their authors wrote them.

``OldESRGAN`` is ESRGAN's original ``nn.Sequential`` generator (xinntao/ESRGAN ``architecture.py``
and ``block.py``, as spandrel keeps it), with ESRGAN+'s extra 1x1 convs and Real-ESRGAN's
pixel-unshuffle; its state dict has the original keys (``model.0``, ``model.1.sub.N.RDB1.conv1.0``,
``model.3`` ...) because that is how the module is built, not because a test renamed anything.
``ReferenceCompact`` is Real-ESRGAN's SRVGGNetCompact. Nothing here imports vidsr's networks, so a
loader that maps a layout onto the wrong place, or a forward pass that differs, shows.
"""

from __future__ import annotations

import re

import torch
from torch import nn
from torch.nn import functional as F

State = dict[str, torch.Tensor]


def _conv(in_ch: int, out_ch: int, *, act: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 3, 1, 1)]
    if act:
        layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


class _DenseBlock(nn.Module):
    def __init__(self, nf: int, gc: int, plus: bool) -> None:
        super().__init__()
        self.conv1x1 = nn.Conv2d(nf, gc, 1, bias=False) if plus else None
        self.conv1 = _conv(nf, gc, act=True)
        self.conv2 = _conv(nf + gc, gc, act=True)
        self.conv3 = _conv(nf + 2 * gc, gc, act=True)
        self.conv4 = _conv(nf + 3 * gc, gc, act=True)
        self.conv5 = _conv(nf + 4 * gc, nf, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        x2 = self.conv2(torch.cat((x, x1), 1))
        if self.conv1x1 is not None:
            x2 = x2 + self.conv1x1(x)
        x3 = self.conv3(torch.cat((x, x1, x2), 1))
        x4 = self.conv4(torch.cat((x, x1, x2, x3), 1))
        if self.conv1x1 is not None:
            x4 = x4 + x2
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class _RRDB(nn.Module):
    def __init__(self, nf: int, gc: int, plus: bool) -> None:
        super().__init__()
        self.RDB1 = _DenseBlock(nf, gc, plus)
        self.RDB2 = _DenseBlock(nf, gc, plus)
        self.RDB3 = _DenseBlock(nf, gc, plus)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.RDB3(self.RDB2(self.RDB1(x))) * 0.2 + x


class _Shortcut(nn.Module):
    def __init__(self, sub: nn.Module) -> None:
        super().__init__()
        self.sub = sub

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sub(x)


class OldESRGAN(nn.Module):
    """ESRGAN's generator: ``stages`` upsampling stages, ``upconv`` (nearest x2, conv, LeakyReLU) or
    ``pixelshuffle`` (conv to factor² x the features, pixel shuffle, LeakyReLU; ``factor`` 3 is
    ESRGAN's x3), optional pixel-unshuffle of the input (Real-ESRGAN x2/x1), optional ESRGAN+ blocks."""

    def __init__(
        self, *, in_nc: int = 3, out_nc: int = 3, nf: int = 8, nb: int = 2, gc: int = 4, stages: int = 2,
        unshuffle: int = 1, plus: bool = False, upsample_mode: str = "upconv", factor: int = 2,
    ) -> None:  # fmt: skip
        super().__init__()
        self.unshuffle = unshuffle
        upsampling: list[nn.Module] = []
        for _ in range(stages):
            if upsample_mode == "pixelshuffle":
                stage = [nn.Conv2d(nf, nf * factor**2, 3, 1, 1), nn.PixelShuffle(factor)]
            else:
                stage = [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(nf, nf, 3, 1, 1)]
            upsampling += [*stage, nn.LeakyReLU(0.2)]
        self.model = nn.Sequential(
            nn.Conv2d(in_nc * unshuffle**2, nf, 3, 1, 1),
            _Shortcut(nn.Sequential(*(_RRDB(nf, gc, plus) for _ in range(nb)), nn.Conv2d(nf, nf, 3, 1, 1))),
            *upsampling,
            nn.Conv2d(nf, nf, 3, 1, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(nf, out_nc, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        return self.model(x)


class ReferenceCompact(nn.Module):
    """Real-ESRGAN's SRVGGNetCompact (srvgg_arch.py)."""

    def __init__(self, *, num_in_ch: int = 3, num_feat: int = 8, num_conv: int = 2, upscale: int = 4, act: str) -> None:
        super().__init__()
        self.upscale = upscale
        self.body = nn.ModuleList([nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), _activation(act, num_feat)])
        for _ in range(num_conv):
            self.body += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), _activation(act, num_feat)]
        self.body.append(nn.Conv2d(num_feat, num_in_ch * upscale * upscale, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        return F.pixel_shuffle(out, self.upscale) + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


def _activation(act: str, num_feat: int) -> nn.Module:
    if act == "prelu":
        prelu = nn.PReLU(num_parameters=num_feat)
        nn.init.uniform_(prelu.weight, 0.0, 0.5)  # distinct slopes, so a misplaced PReLU would show
        return prelu
    return nn.ReLU() if act == "relu" else nn.LeakyReLU(0.1)


# ---------------------------------------------------------------- the newer names of one old-arch state


def _tail_indices(state: State) -> list[int]:
    return sorted({int(m.group(1)) for key in state if (m := re.fullmatch(r"model\.(\d+)\.weight", key))} - {0})


def to_new_names(state: State, *, style: str) -> State:
    """ESRGAN's ``model.N`` names → BasicSR's (``basicsr``) or the ESRGAN repo's / KAIR's (``repo``)."""
    basicsr = style == "basicsr"
    tail = _tail_indices(state)
    up_name = "conv_up" if basicsr else "upconv"
    names = {0: "conv_first"} | {index: f"{up_name}{n + 1}" for n, index in enumerate(tail[:-2])}
    names |= {tail[-2]: "conv_hr" if basicsr else "HRconv", tail[-1]: "conv_last"}
    trunk = "body" if basicsr else "RRDB_trunk"
    num_block = max(int(m.group(1)) for key in state if (m := re.match(r"model\.1\.sub\.(\d+)\.RDB", key))) + 1
    renamed: State = {}
    for key, value in state.items():
        if match := re.fullmatch(r"model\.1\.sub\.(\d+)\.RDB(\d)\.(conv\d)(?:\.0)?\.(weight|bias)", key):
            block, rdb, conv, kind = match.groups()
            rdb_name = f"rdb{rdb}" if basicsr else f"RDB{rdb}"
            renamed[f"{trunk}.{block}.{rdb_name}.{conv}.{kind}"] = value
        elif match := re.fullmatch(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv1x1\.weight", key):
            block, rdb = match.groups()
            renamed[f"{trunk}.{block}.{'rdb' if basicsr else 'RDB'}{rdb}.conv1x1.weight"] = value
        elif key.startswith(f"model.1.sub.{num_block}."):
            renamed[f"{'conv_body' if basicsr else 'trunk_conv'}.{key.rsplit('.', 1)[1]}"] = value
        else:
            index, kind = re.fullmatch(r"model\.(\d+)\.(weight|bias)", key).groups()  # type: ignore[union-attr]
            renamed[f"{names[int(index)]}.{kind}"] = value
    return renamed
