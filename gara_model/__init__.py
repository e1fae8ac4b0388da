"""GaRA-SAM: gated-rank adapters on a frozen Segment Anything Model (pure PyTorch, no ROS)."""

from gara_model.config import GaraConfig

__all__ = ["GaraConfig"]
