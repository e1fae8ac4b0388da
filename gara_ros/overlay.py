"""Overlay drawing for RViz / rqt_image_view: coloured masks, ids and scores. No rclpy."""

from __future__ import annotations

import cv2
import numpy as np

# BGR colours, one per label, cycled (tab10).
PALETTE = np.array([
    (180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
    (75, 86, 140), (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23),
], np.uint8)


def label_colour(label: int) -> np.ndarray:
    """The BGR colour of instance label 1, 2, ... (object i of a result has label i + 1)."""
    return PALETTE[(label - 1) % len(PALETTE)]


def draw_overlay(rgb: np.ndarray, masks: np.ndarray, object_ids: list[str], scores: np.ndarray,
                 alpha: float = 0.5) -> np.ndarray:
    """(H,W,3) uint8 RGB and (O,H,W) bool masks -> (H,W,3) uint8 BGR with masks blended, outlined and labelled.

    Each mask is blended inside its bounding box only, with OpenCV (boolean indexing of a 1080p frame costs ~90 ms).
    """
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    for i, (mask, object_id, score) in enumerate(zip(masks, object_ids, scores, strict=True)):
        colour = label_colour(i + 1)
        inside = mask.view(np.uint8)
        x, y, width, height = cv2.boundingRect(inside)
        if width == 0:
            continue
        roi, roi_mask = bgr[y:y + height, x:x + width], inside[y:y + height, x:x + width]
        tinted = cv2.add(cv2.convertScaleAbs(roi, alpha=1 - alpha), (*(alpha * colour).tolist(), 0.0))
        cv2.copyTo(tinted, roi_mask, roi)  # writes through the view into bgr
        contours, _ = cv2.findContours(roi_mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(x, y))
        cv2.drawContours(bgr, contours, -1, colour.tolist(), 2)
        cv2.putText(bgr, f"{object_id} {score:.2f}", (x, max(y - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    colour.tolist(), 1, cv2.LINE_AA)
    return bgr


def side_by_side(overlays: list[np.ndarray | None], labels: list[str], caption_height: int = 18) -> np.ndarray:
    """(H,W,3) uint8 BGR overlays of one frame, one per model (None where a model made no output), next to each other
    under a caption strip with each model's label -> (caption_height + H, sum of W, 3). A missing overlay is black,
    captioned "no output", at the size of the others."""
    shape = next(overlay.shape for overlay in overlays if overlay is not None)
    panels = []
    for overlay, label in zip(overlays, labels, strict=True):
        panel = np.zeros((caption_height + shape[0], shape[1], 3), np.uint8)
        if overlay is not None:
            panel[caption_height:] = overlay
        caption = label if overlay is not None else f"{label}: no output"
        cv2.putText(panel, caption, (4, caption_height - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                    cv2.LINE_AA)
        panels.append(panel)
    return np.hstack(panels)
