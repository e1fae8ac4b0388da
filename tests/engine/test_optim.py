"""The optimizer's parameter groups: the gate MLPs apart, with their own learning rate and weight decay."""

import pytest
import torch

from gara_model.adapters.variants import GateVariant
from gara_model.build import build_model
from gara_model.engine.config import load_train_config
from gara_model.engine.optim import build_optimizer


def model_and_optimizer(*overrides):
    cfg = load_train_config(overrides=["adapter.ranks=[2, 4]", "adapter.gate_hidden_dim=8", "optim.lr=1e-3", *overrides])
    model = build_model("tiny", config=cfg.adapter)
    return model, build_optimizer(model, cfg)


def test_gate_mlps_form_their_own_group_with_their_lr_and_decay():
    model, optimizer = model_and_optimizer("optim.weight_decay=1e-5", "optim.gate_weight_decay=0", "optim.gate_lr_scale=3")
    groups = {g["name"]: g for g in optimizer.param_groups}
    gate_params = {id(p) for m in model.modules() if isinstance(m, GateVariant) for p in m.parameters()}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for p in groups["gates"]["params"]} == gate_params
    assert {id(p) for p in groups["adapters"]["params"]} == trainable - gate_params
    assert (groups["gates"]["lr"], groups["gates"]["weight_decay"]) == (3e-3, 0)
    assert (groups["adapters"]["lr"], groups["adapters"]["weight_decay"]) == (1e-3, 1e-5)


def test_with_gate_weight_decay_null_the_paper_single_coupled_decay_applies_to_the_gates():
    _, optimizer = model_and_optimizer("optim.weight_decay=1e-5", "optim.gate_weight_decay=null")
    assert [(g["name"], g["lr"], g["weight_decay"]) for g in optimizer.param_groups] == [
        ("adapters", 1e-3, 1e-5), ("gates", 1e-3, 1e-5)]


def test_excluded_gates_do_not_shrink_when_the_loss_gives_them_no_gradient():
    """Coupled decay alone moves every weight by about lr per Adam step; with gate_weight_decay=0 the gates stay."""
    for gate_decay, gates_move in (("null", True), ("0", False)):
        model, optimizer = model_and_optimizer("optim.weight_decay=1e-5", f"optim.gate_weight_decay={gate_decay}")
        before = {id(p): p.detach().clone() for g in optimizer.param_groups for p in g["params"]}
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad = torch.zeros_like(p)
        optimizer.step()
        moved = {g["name"]: max((p - before[id(p)]).abs().max().item() for p in g["params"]) for g in optimizer.param_groups}
        assert moved["adapters"] > 5e-4  # A's rows shrink by about lr
        assert (moved["gates"] > 5e-4) == gates_move, moved


def test_cosine_schedule_with_warm_up_reaches_zero_at_the_last_step():
    from gara_model.engine.optim import learning_rate_factor, set_learning_rate

    cfg = load_train_config(overrides=["steps=110", "optim.schedule=cosine", "optim.warmup_steps=10"])
    factors = [learning_rate_factor(step, cfg) for step in range(110)]
    assert factors[:10] == [pytest.approx((s + 1) / 10) for s in range(10)]
    assert factors[10] == 1.0 and factors[60] == pytest.approx(0.5) and factors[109] == pytest.approx(0.0, abs=1e-3)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    constant = load_train_config(overrides=["steps=110", "optim.schedule=constant"])
    assert {learning_rate_factor(step, constant) for step in range(110)} == {1.0}
    model, optimizer = model_and_optimizer("steps=110", "optim.schedule=cosine", "optim.gate_lr_scale=2")
    set_learning_rate(optimizer, 55, load_train_config(overrides=["steps=110", "optim.schedule=cosine"]))  # half way
    assert [g["lr"] for g in optimizer.param_groups] == [pytest.approx(5e-4), pytest.approx(1e-3)]
