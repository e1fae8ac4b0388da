"""Binary gates from logits: Gumbel-Sigmoid with a straight-through estimator (paper eq. 4-5)."""

import torch


def binary_gate(logits: torch.Tensor, tau: float, training: bool) -> torch.Tensor:
    """Turns gate logits (any shape) into {0, 1} gates of the same shape.

    Training: z_soft = sigmoid((logit + g1 - g2) / tau) with g1, g2 ~ Gumbel(0, 1); the forward value is the
    hard threshold 1[z_soft > 0.5], the gradient is that of z_soft (straight-through).
    Eval: deterministic 1[sigmoid(logit) > 0.5], no noise.
    """
    if not training:
        return (torch.sigmoid(logits) > 0.5).to(logits.dtype)
    # g1 - g2 of two independent Gumbel(0, 1) samples is Logistic(0, 1): log(u) - log(1 - u).
    u = torch.rand_like(logits).clamp_(torch.finfo(logits.dtype).tiny, 1.0 - torch.finfo(logits.dtype).eps)
    soft = torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / tau)
    hard = (soft > 0.5).to(logits.dtype)
    return hard + (soft - soft.detach())  # exactly `hard` forward; d/dlogit of `soft` backward
