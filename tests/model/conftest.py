"""Tiny SAM models built from segment_anything's own classes, with seeded weights."""

import copy

import pytest
import torch

from gara_model.build import build_model


@pytest.fixture(scope="session")
def tiny_sam_session():
    torch.manual_seed(0)
    sam = build_model("tiny", pretrained=False)
    # SAM initialises relative positions to zero; random ones make the equality tests stronger.
    with torch.no_grad():
        for name, p in sam.named_parameters():
            if "rel_pos" in name:
                p.normal_(0, 0.1)
    return sam


@pytest.fixture
def tiny_sam(tiny_sam_session):
    """A plain tiny SAM (eval mode), a fresh copy per test."""
    return copy.deepcopy(tiny_sam_session)


@pytest.fixture
def images():
    """Two different preprocessed-size images, 2 x 3 x 128 x 128 in [0, 255]."""
    generator = torch.Generator().manual_seed(1)
    return torch.rand((2, 3, 128, 128), generator=generator) * 255
