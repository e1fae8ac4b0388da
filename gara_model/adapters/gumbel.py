"""Binary and one-hot gates from logits with a straight-through estimator (paper eq. 3-6).

Training adds one sample G ~ Gumbel(0, 1) to each logit (eq. 3 and 6): z_soft = sigmoid((alpha + G) / tau); the forward
value is the hard decision 1[z_soft > 0.5] = 1[alpha + G > 0], the gradient that of z_soft (straight-through). A
gate with logit alpha is therefore on with probability P(G > -alpha) = 1 - exp(-exp(alpha)) in training (0.63 at
alpha = 0); in eval it is the deterministic 1[sigmoid(alpha) > 0.5] = 1[alpha > 0].
"""

import torch
import torch.nn.functional as F


def gumbel_noise(like: torch.Tensor) -> torch.Tensor:
    """Independent Gumbel(0, 1) samples, -log(-log(u)) with u ~ U(0, 1), shaped and typed like `like`."""
    finfo = torch.finfo(like.dtype)
    u = torch.rand_like(like).clamp_(finfo.tiny, 1.0 - finfo.eps)
    return -torch.log(-torch.log(u))


def binary_gate(logits: torch.Tensor, tau: float, training: bool, noise: torch.Tensor | None = None) -> torch.Tensor:
    """{0, 1} gates of the shape of `logits` (any shape).

    noise: the Gumbel sample G added in training (default: drawn here with `gumbel_noise`); ignored in eval.
    """
    if not training:
        return (logits > 0).to(logits.dtype)
    soft = torch.sigmoid((logits + (gumbel_noise(logits) if noise is None else noise)) / tau)
    hard = (soft > 0.5).to(logits.dtype)
    return hard + (soft - soft.detach())  # exactly `hard` forward; d/dlogit of `soft` backward


def one_hot_gate(logits: torch.Tensor, tau: float, training: bool, noise: torch.Tensor | None = None) -> torch.Tensor:
    """One-hot choice among the last dimension of `logits` (B x E -> B x E in {0, 1}, one 1 per row).

    Training: Gumbel-softmax with a straight-through estimator, softmax((logits + G) / tau) with G ~ Gumbel(0, 1)
    per entry, hard argmax forward; eval: argmax of the logits.
    """
    if not training:
        return F.one_hot(logits.argmax(dim=-1), logits.shape[-1]).to(logits.dtype)
    soft = torch.softmax((logits + (gumbel_noise(logits) if noise is None else noise)) / tau, dim=-1)
    hard = F.one_hot(soft.argmax(dim=-1), logits.shape[-1]).to(logits.dtype)
    return hard + (soft - soft.detach())
