"""The image condition encoder and the latent denoiser (MONAI DiffusionModelUNet over [z_t, features])."""

from __future__ import annotations

import torch
from monai.networks.nets import DiffusionModelUNet
from torch import nn


def _conv_block(cin: int, cout: int, groups: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(min(groups, cout), cout), nn.SiLU())


class ImageEncoder(nn.Module):
    """UNet-style encoder: image B×C×H×W → feature maps B×out×H/f×W/f at latent resolution.

    Each level halves the resolution; the last level's features are fused with an upsampled
    coarser summary (one skip), so the features see context beyond their own receptive field."""

    def __init__(self, in_channels: int, channels: list[int], out_channels: int, factor: int, groups: int = 8) -> None:
        super().__init__()
        levels = factor.bit_length() - 1
        self.stem = _conv_block(in_channels, channels[0], groups)
        self.down = nn.ModuleList(
            _conv_block(channels[min(i, len(channels) - 1)], channels[min(i + 1, len(channels) - 1)], groups, 2)
            for i in range(levels)
        )
        width = channels[min(levels, len(channels) - 1)]
        self.context = nn.Sequential(_conv_block(width, width, groups, 2), _conv_block(width, width, groups))
        self.fuse = _conv_block(2 * width, width, groups)
        self.head = nn.Conv2d(width, out_channels, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stem(images)
        for down in self.down:
            x = down(x)
        context = nn.functional.interpolate(self.context(x), size=x.shape[-2:], mode="nearest")
        return self.head(self.fuse(torch.cat([x, context], dim=1)))


class ConcatDenoiser(nn.Module):
    """ε- or v-prediction network over `cat([z_t, condition])`: B×(c+k)×h×w → B×c×h×w.

    Concatenation conditioning is this one `torch.cat`; classifier-free guidance reuses it with
    an all-zero condition as the 'unconditional' input."""

    def __init__(
        self,
        latent_channels: int,
        cond_channels: int,
        channels: list[int],
        attention_levels: list[bool],
        norm_num_groups: int = 8,
    ) -> None:
        super().__init__()
        self.unet = DiffusionModelUNet(
            spatial_dims=2,
            in_channels=latent_channels + cond_channels,
            out_channels=latent_channels,
            channels=tuple(channels),
            attention_levels=tuple(attention_levels),
            num_res_blocks=1,
            norm_num_groups=norm_num_groups,
            num_head_channels=channels[-1] // 2,
        )

    def forward(self, z_t: torch.Tensor, timesteps: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.unet(torch.cat([z_t, condition], dim=1), timesteps)


class ImageDecoder(nn.Module):
    """Reconstructs the image B×C×H×W from ImageEncoder features B×k×H/f×W/f.

    Only used to pre-train the condition encoder as an image autoencoder (the paper's image VAE
    initialisation); discarded from the sampling path."""

    def __init__(self, in_channels: int, width: int, out_channels: int, factor: int, groups: int = 8) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_block(in_channels, width, groups)]
        for _ in range(factor.bit_length() - 1):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), _conv_block(width, width, groups)]
        layers.append(nn.Conv2d(width, out_channels, 3, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)
