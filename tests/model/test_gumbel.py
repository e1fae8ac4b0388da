"""Gumbel-Sigmoid gates with the straight-through estimator (paper eq. 3-6), and the one-hot gate of MoE LoRA."""

import math

import pytest
import torch

from gara_model.adapters.gumbel import binary_gate, gumbel_noise, one_hot_gate


def test_eval_is_deterministic_sigmoid_threshold():
    logits = torch.tensor([-3.0, -1e-4, 0.0, 1e-4, 2.0])
    expected = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0])  # sigmoid(0) = 0.5 is not > 0.5
    assert torch.equal(binary_gate(logits, tau=0.5, training=False), expected)
    assert torch.equal(binary_gate(logits, tau=0.5, training=False), binary_gate(logits, tau=0.5, training=False))


def test_noise_is_standard_gumbel():
    """Gumbel(0, 1): CDF exp(-exp(-g)), mean Euler's gamma, variance pi^2 / 6 (a logistic sample has mean 0)."""
    torch.manual_seed(0)
    g = gumbel_noise(torch.empty(200_000))
    assert g.mean().item() == pytest.approx(0.5772, abs=0.01)
    assert g.var().item() == pytest.approx(math.pi**2 / 6, rel=0.02)
    for x in (-1.0, 0.0, 1.0, 2.5):
        assert (g <= x).float().mean().item() == pytest.approx(math.exp(-math.exp(-x)), abs=0.005)


@pytest.mark.parametrize("logit", [-2.0, -0.5, 0.0, 1.0])
def test_training_gate_is_on_with_the_gumbel_probability(logit):
    """P(alpha + G > 0) = 1 - exp(-exp(alpha)): 0.63 at alpha = 0, where logistic noise would give 0.5."""
    torch.manual_seed(1)
    on = binary_gate(torch.full((100_000,), logit), tau=0.5, training=True).mean().item()
    assert on == pytest.approx(1 - math.exp(-math.exp(logit)), abs=0.006)


def test_training_forward_is_hard_threshold_of_gumbel_sigmoid():
    logits = torch.linspace(-2, 2, 50)
    noise = gumbel_noise(logits)
    gates = binary_gate(logits, tau=0.5, training=True, noise=noise)
    assert torch.equal(gates, (torch.sigmoid((logits + noise) / 0.5) > 0.5).float())
    assert set(gates.unique().tolist()) == {0.0, 1.0}


def test_straight_through_gradient_is_that_of_the_relaxed_gate():
    logits = torch.linspace(-2, 2, 7, requires_grad=True)
    tau = 0.5
    noise = gumbel_noise(logits.detach())
    binary_gate(logits, tau=tau, training=True, noise=noise).sum().backward()
    soft = torch.sigmoid((logits.detach() + noise) / tau)
    assert torch.allclose(logits.grad, soft * (1 - soft) / tau, atol=1e-6)


def test_one_hot_gate_picks_exactly_one_and_passes_the_softmax_gradient():
    logits = torch.tensor([[0.0, 3.0, -1.0], [2.0, 0.0, 0.0]], requires_grad=True)
    assert torch.equal(one_hot_gate(logits, 0.5, training=False), torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    noise = gumbel_noise(logits.detach())
    hard = one_hot_gate(logits, 0.5, training=True, noise=noise)
    soft = torch.softmax((logits.detach() + noise) / 0.5, dim=-1)
    assert torch.equal(hard.detach(), torch.nn.functional.one_hot(soft.argmax(-1), 3).float())
    weights = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    (hard * weights).sum().backward()
    jacobian_product = soft * (weights - (soft * weights).sum(-1, keepdim=True)) / 0.5  # d/dlogits of sum(w * softmax)
    assert torch.allclose(logits.grad, jacobian_product, atol=1e-6)


def test_one_hot_training_choice_follows_the_gumbel_max_distribution():
    """argmax(logits + G) is a sample from softmax(logits) (the Gumbel-max trick)."""
    torch.manual_seed(2)
    logits = torch.log(torch.tensor([0.2, 0.5, 0.3])).expand(60_000, 3)
    share = one_hot_gate(logits, 0.5, training=True).mean(0)
    assert torch.allclose(share, torch.tensor([0.2, 0.5, 0.3]), atol=0.01)
