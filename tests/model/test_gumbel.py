"""Gumbel-Sigmoid gates with the straight-through estimator (paper eq. 4-5)."""

import torch

from gara_model.adapters.gumbel import binary_gate


def test_eval_is_deterministic_sigmoid_threshold():
    logits = torch.tensor([-3.0, -1e-4, 0.0, 1e-4, 2.0])
    expected = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0])  # sigmoid(0) = 0.5 is not > 0.5
    assert torch.equal(binary_gate(logits, tau=0.5, training=False), expected)
    assert torch.equal(binary_gate(logits, tau=0.5, training=False), binary_gate(logits, tau=0.5, training=False))


def test_training_forward_is_hard_threshold_of_gumbel_sigmoid():
    logits = torch.linspace(-2, 2, 50)
    torch.manual_seed(3)
    gates = binary_gate(logits, tau=0.5, training=True)
    torch.manual_seed(3)
    u = torch.rand_like(logits)
    soft = torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / 0.5)
    assert torch.equal(gates, (soft > 0.5).float())
    assert set(gates.unique().tolist()) == {0.0, 1.0}


def test_straight_through_gradient_is_that_of_the_relaxed_gate():
    logits = torch.linspace(-2, 2, 7, requires_grad=True)
    tau = 0.5
    torch.manual_seed(4)
    binary_gate(logits, tau=tau, training=True).sum().backward()
    torch.manual_seed(4)
    u = torch.rand(7)
    soft = torch.sigmoid((logits.detach() + torch.log(u) - torch.log1p(-u)) / tau)
    assert torch.allclose(logits.grad, soft * (1 - soft) / tau, atol=1e-6)


def test_training_noise_makes_gates_stochastic_around_the_logit():
    torch.manual_seed(0)
    logits = torch.full((20000,), 1.0)
    on = binary_gate(logits, tau=0.5, training=True).mean().item()
    # P(logit + Logistic noise > 0) = sigmoid(logit): the temperature does not move the threshold.
    assert abs(on - torch.sigmoid(torch.tensor(1.0)).item()) < 0.02
