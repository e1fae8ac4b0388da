"""Running SAM (or GaRA-SAM) at another input size than it was trained for: the geometry (BA-SAM's attention is
`basam.py`'s)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segment_anything.modeling import ImageEncoderViT, Sam
from torch import nn


def resize_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Absolute positional embedding 1 x H x W x C -> 1 x h x w x C (bicubic); the same grid returns it unchanged."""
    if tuple(pos_embed.shape[1:3]) == tuple(grid):
        return pos_embed
    # B x H x W x C -> B x C x H x W and back
    resized = F.interpolate(pos_embed.permute(0, 3, 1, 2), size=tuple(grid), mode="bicubic", align_corners=False)
    return resized.permute(0, 2, 3, 1)


class ResizableImageEncoder(nn.Module):
    """Takes over SAM's `ImageEncoderViT` (same modules and state-dict names) and accepts any input whose sides are
    multiples of the patch size, square or not; the native positional embedding is resized to each token grid.

    img_size: the square input size `Sam.preprocess` pads to and `ResizeLongestSide` resizes to.
    """

    def __init__(self, encoder: ImageEncoderViT) -> None:
        super().__init__()
        self.img_size = encoder.img_size
        self.patch_embed = encoder.patch_embed
        self.pos_embed = encoder.pos_embed
        self.blocks = encoder.blocks
        self.neck = encoder.neck

    @property
    def patch_size(self) -> int:
        return self.patch_embed.proj.kernel_size[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: B x 3 x H x W, H and W multiples of the patch size p -> B x out_chans x H/p x W/p."""
        if x.shape[-2] % self.patch_size or x.shape[-1] % self.patch_size:
            raise ValueError(f"x: input of {x.shape[-2]} x {x.shape[-1]} pixels is not a multiple of the patch size {self.patch_size}")
        x = self.patch_embed(x)  # B x h x w x C
        if self.pos_embed is not None:
            x = x + resize_pos_embed(self.pos_embed, x.shape[1:3])
        for blk in self.blocks:
            x = blk(x)
        return self.neck(x.permute(0, 3, 1, 2))  # B x h x w x C -> B x C x h x w


def set_image_size(sam: Sam, image_size: int) -> Sam:
    """Runs `sam` (plain or GaRA-SAM) on image_size x image_size inputs, in place.

    The image encoder, the prompt encoder's grid and the mask geometry follow the new size; SAM's weights are never
    changed (the positional embedding is resized on the fly, relative-position tables by SAM's `get_rel_pos`).
    The attention stays as it is: BA-SAM's, for sizes other than the native one, is `basam.set_scaling`'s.
    """
    encoder = sam.image_encoder
    if encoder.pos_embed is None:
        raise ValueError("sam: image_size needs an image encoder with an absolute positional embedding (SAM's)")
    patch = encoder.patch_embed.proj.kernel_size[0]
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0 or image_size % patch:
        raise ValueError(f"image_size must be a positive multiple of the patch size {patch}, got {image_size!r}")
    if not isinstance(encoder, ResizableImageEncoder):
        sam.image_encoder = encoder = ResizableImageEncoder(encoder).train(encoder.training)
    encoder.img_size = image_size
    grid = image_size // patch
    prompt_encoder = sam.prompt_encoder
    prompt_encoder.image_embedding_size = (grid, grid)
    prompt_encoder.input_image_size = (image_size, image_size)
    prompt_encoder.mask_input_size = (4 * grid, 4 * grid)
    return sam
