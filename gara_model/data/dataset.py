"""Base class of every instance-mask dataset: skips bad samples unless ``strict``."""
from __future__ import annotations

from torch.utils.data import Dataset

from .errors import BadDataError, report
from .sample import InstanceSample


class InstanceDataset(Dataset):
    """A torch ``Dataset`` of :class:`InstanceSample`.

    Subclasses implement ``__len__`` and ``load(index)``; ``load`` raises
    :class:`BadDataError` for a file it cannot use. ``__getitem__`` then logs a
    warning naming the file and returns the next good sample (or re-raises when
    ``strict``). Datasets compose with ``+`` (``torch.utils.data.ConcatDataset``),
    which keeps each sample's metadata.
    """

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        self._bad: set[int] = set()

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> InstanceSample:
        raise NotImplementedError

    def __getitem__(self, index: int) -> InstanceSample:
        size = len(self)
        if not -size <= index < size:
            raise IndexError(f"index {index} out of range for {size} samples")
        for offset in range(size):
            candidate = (index + offset) % size
            if candidate in self._bad:
                continue
            try:
                return self.load(candidate)
            except BadDataError as error:
                report(error, self.strict)
                self._bad.add(candidate)
        raise RuntimeError(f"{type(self).__name__}: no readable sample among {size}")
