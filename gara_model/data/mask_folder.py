"""Folders of image + binary mask pairs (MSRA-10K, ThinObject-5K); one instance per image."""
from __future__ import annotations

from pathlib import Path

from .dataset import InstanceDataset
from .errors import BadDataError, report
from .images import IMAGE_SUFFIXES, read_binary_mask, read_rgb
from .sample import InstanceSample


class MaskFolderInstances(InstanceDataset):
    """Pairs ``image_dir/<stem>.<jpg|png…>`` with ``mask_dir/<stem><mask_suffix>``.

    With ``mask_dir`` None the masks sit beside the images (MSRA-10K:
    ``xxx.jpg`` + ``xxx.png``); files ending in ``mask_suffix`` are then masks.
    An image without mask or a mask without image is reported.
    """

    def __init__(self, image_dir: str | Path, mask_dir: str | Path | None = None, *,
                 dataset: str = "mask_folder", condition: str = "clear",
                 mask_suffix: str = ".png", strict: bool = False) -> None:
        super().__init__(strict)
        self.dataset, self.condition = dataset, condition
        image_dir = Path(image_dir)
        mask_dir = image_dir if mask_dir is None else Path(mask_dir)
        masks = {p.name[: -len(mask_suffix)]: p for p in sorted(mask_dir.iterdir())
                 if p.name.endswith(mask_suffix)}
        images = {p.stem: p for p in sorted(image_dir.iterdir())
                  if p.suffix.lower() in IMAGE_SUFFIXES and not (mask_dir == image_dir and p.name.endswith(mask_suffix))}
        self.items = [(images[s], masks[s]) for s in sorted(images.keys() & masks.keys())]
        for stem in sorted(images.keys() - masks.keys()):
            report(BadDataError(images[stem], f"no mask {stem}{mask_suffix} in {mask_dir}"), strict)
        for stem in sorted(masks.keys() - images.keys()):
            report(BadDataError(masks[stem], f"mask for a missing image {stem}.* in {image_dir}"), strict)

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> InstanceSample:
        image_path, mask_path = self.items[index]
        image, mask = read_rgb(image_path), read_binary_mask(mask_path)
        if mask.shape != image.shape[:2]:
            raise BadDataError(mask_path, f"mask {mask.shape} != image {image.shape[:2]}")
        meta = {"dataset": self.dataset, "file": str(image_path), "condition": self.condition,
                "image_id": image_path.stem, "category_ids": [1]}
        return InstanceSample(image, mask[None], meta)
