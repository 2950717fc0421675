"""Random training windows: of masks alone (the mask autoencoder) or of image-mask pairs (segmenters).

A convolutional network learns the same local shapes from a window at a fraction of the cost of
the whole image; nnU-Net trains on patches so, with a third of them forced onto foreground."""

from __future__ import annotations

import torch


def random_crops(masks: torch.Tensor, side: int, on_foreground: bool = False) -> torch.Tensor:
    """One random side×side window per mask of B×1×H×W (the global torch stream); side 0 or ≥ H: unchanged.

    on_foreground: a mask with foreground gets a window drawn uniformly among those holding one of
    its foreground pixels, itself drawn uniformly. Lesions are small and near the middle of a
    crop-centred dataset (LIDC): uniform 32 px windows of 128 px masks miss the nodule nine times
    in ten, so the codec rarely sees one."""
    windows = _windows(masks, side, on_foreground)
    return masks if windows is None else _cut(masks, side, *windows)


def paired_crops(
    images: torch.Tensor, masks: torch.Tensor, side: int, on_foreground: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random side×side window of each image B×C×H×W and its mask B×1×H×W; side 0 or ≥ H:
    both unchanged. on_foreground (as in random_crops): a window of a marked mask holds some of its
    foreground, so the batch's foreground share survives the crop."""
    windows = _windows(masks, side, on_foreground)
    if windows is None:
        return images, masks
    return _cut(images, side, *windows), _cut(masks, side, *windows)


def _windows(masks: torch.Tensor, side: int, on_foreground: bool) -> tuple[torch.Tensor, torch.Tensor] | None:
    height, width = masks.shape[-2:]
    if side <= 0 or (side >= height and side >= width):
        return None
    rows = torch.randint(0, height - side + 1, (masks.shape[0],))
    cols = torch.randint(0, width - side + 1, (masks.shape[0],))
    if on_foreground:
        rows, cols = _windows_on_foreground(masks, side, rows, cols)
    return rows, cols


def _cut(tensors: torch.Tensor, side: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    return torch.stack(
        [t[:, r : r + side, c : c + side] for t, r, c in zip(tensors, rows.tolist(), cols.tolist(), strict=True)]
    )


def _windows_on_foreground(
    masks: torch.Tensor, side: int, rows: torch.Tensor, cols: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-left corners of windows holding a random foreground pixel; `rows`/`cols` for empty masks."""
    height, width = masks.shape[-2:]
    flat = masks.flatten(1) > 0
    weights = flat.float() + (~flat.any(1, keepdim=True)).float()  # an empty mask: any pixel, unused
    pixel = torch.multinomial(weights, 1)[:, 0]
    r, c = pixel // width, pixel % width
    # the window's top-left row lies in [r − side + 1, r], clipped to the image
    low_r, high_r = (r - side + 1).clamp(min=0), r.clamp(max=height - side)
    low_c, high_c = (c - side + 1).clamp(min=0), c.clamp(max=width - side)
    pick_r = low_r + (torch.rand(len(r)) * (high_r - low_r + 1)).long()
    pick_c = low_c + (torch.rand(len(c)) * (high_c - low_c + 1)).long()
    marked = flat.any(1)
    return torch.where(marked, pick_r, rows), torch.where(marked, pick_c, cols)
