"""A real (tiny) training run: only adapters change, the loss goes down, resume is exact, DDP over gloo."""

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gara_model.build import build_model
from gara_model.checkpoint import read_adapter_config
from gara_model.engine.config import load_train_config
from gara_model.data.synthetic import SyntheticInstances
from gara_model.engine.batch import TrainItems
from gara_model.engine.checkpointing import save_checkpoint
from gara_model.engine.distributed import Distributed
from gara_model.engine.optim import build_optimizer
from gara_model.engine.trainer import batch_loss, build_training_model, train, train_step
from gara_model.modeling import adapter_state_dict

TINY_RUN = [
    "data.train=[{name: synthetic, size: 16, seed: 3, num_objects: [1, 1]}]",
    "data.num_workers=0",
    "data.corruptions=[]",
    "adapter.ranks=[4, 8]",
    "adapter.gate_hidden_dim=16",
    "batch_size=2",
    "evaluate=false",
    "log_every=1",
]


def run(tmp_path, name, *overrides):
    cfg = load_train_config(overrides=TINY_RUN + [f"output_dir={tmp_path / name}", *overrides])
    return train(cfg), cfg


def train_state_file(run_dir):
    """The run's one train-state file (optimizer and scaler state), whatever it is named."""
    (path,) = run_dir.glob("train_state*.pt")
    return path


def adapter_weights(run_dir):
    return adapter_state_dict(build_model("tiny", adapter=run_dir / "adapter.safetensors"))


FIXED_DATA = "data.train=[{name: synthetic, size: 2, seed: 99, num_objects: [1, 2]}]"


def fixed_batch_loss(model, cfg):
    """The loss on the two images of FIXED_DATA, with fixed prompts and deterministic gates (eval mode)."""
    items = TrainItems(SyntheticInstances(size=2, seed=99, num_objects=(1, 2)), 128, 4, "both", 3, 0.0, seed=0)
    with torch.no_grad():
        return batch_loss(model.eval(), model.image_encoder, [items[(i, 0)] for i in range(2)], cfg, torch.device("cpu"))[0].item()


def fresh_gara(cfg):
    return build_model("tiny", config=cfg.adapter)


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_train_step_on_the_device_moves_only_adapters(device, precision):
    """The trainer's step on `device` ("auto" is fp16 autocast with a GradScaler on CUDA, fp32 on the CPU): finite
    loss and gradient norm, adapters changed within a few steps (a GradScaler skips steps that overflow), SAM not."""
    cfg = load_train_config(overrides=TINY_RUN + [f"precision={precision}"])
    model = build_training_model(cfg).to(device).train()
    optimizer = build_optimizer(model, cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda" and precision == "auto")
    items = TrainItems(SyntheticInstances(size=2, seed=99, num_objects=(1, 2)), 128, 4, "both", 3, 0.0, seed=0)
    batch = [items[(i, 0)] for i in range(2)]
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for step in range(5):
        parts, _, grad_norm = train_step(model, model.image_encoder, batch, optimizer, scaler, cfg, step,
                                         Distributed(0, 1, device))
        assert torch.isfinite(torch.tensor(parts["loss"])) and (torch.isfinite(grad_norm) or scaler.is_enabled())
        changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
        if changed:
            break
    assert any(name.endswith("lora_B") for name in changed)
    assert all(model.get_parameter(name).requires_grad for name in changed)


def test_training_changes_only_adapters_and_lowers_the_loss(tmp_path):
    run_dir, cfg = run(tmp_path, "a", FIXED_DATA, "steps=2", "optim.lr=3e-3", "data.prompt_mode=both", "data.box_jitter=0")
    trained = build_model("tiny", adapter=run_dir / "adapter.safetensors")
    base = build_model("tiny")
    base_state = base.state_dict()
    for key, value in trained.state_dict().items():
        if ".adapters." not in key and ".feature." not in key:
            assert torch.equal(value, base_state[key.replace(".base_layer.", ".")]), key
    assert any(p.abs().sum() > 0 for n, p in adapter_state_dict(trained).items() if n.endswith("lora_B"))
    before = fixed_batch_loss(fresh_gara(cfg), cfg)
    after = fixed_batch_loss(trained, cfg)
    assert after < before
    assert (run_dir / "config.yaml").is_file() and list((run_dir / "tb").iterdir())
    config, _ = read_adapter_config(run_dir / "adapter.safetensors")
    assert config == cfg.adapter


def test_resume_continues_exactly(tmp_path, monkeypatch):
    """A 4-step run stopped by Ctrl-C right after its step-2 checkpoint, then resumed, ends with the weights of a run
    that was never stopped: same batches, same optimizer state, same place on the (default cosine) schedule."""
    straight, _ = run(tmp_path, "straight", "steps=4", "save_every=2")
    def save_then_ctrl_c_at_step_2(model, optimizer, scaler, step, cfg, run_dir):
        save_checkpoint(model, optimizer, scaler, step, cfg, run_dir)
        if step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr("gara_model.engine.trainer.save_checkpoint", save_then_ctrl_c_at_step_2)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "resumed", "steps=4", "save_every=2")
    monkeypatch.undo()
    assert torch.load(train_state_file(tmp_path / "resumed"), weights_only=True)["step"] == 2
    resumed, _ = run(tmp_path, "resumed", "steps=4", "save_every=2", "resume=true")
    a, b = adapter_weights(straight), adapter_weights(resumed)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    state = torch.load(train_state_file(resumed), weights_only=True)
    assert state["step"] == 4


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        run(tmp_path, "empty", "steps=2", "resume=true")


def test_base_training_saves_the_whole_sam(tmp_path):
    run_dir, _ = run(tmp_path, "base", "steps=1", "model.train_base=true", "optim.lr=1e-3")
    trained = build_model("tiny", run_dir / "sam.safetensors")
    base = build_model("tiny")
    changed = [k for k, v in trained.state_dict().items() if not torch.equal(v, base.state_dict()[k])]
    assert any(k.startswith("image_encoder.") for k in changed) and any(k.startswith("mask_decoder.") for k in changed)


def test_torchrun_two_gloo_processes_equal_one_process_with_the_global_batch(tmp_path):
    """DDP averages the ranks' gradients; with one mask per image that is the single-process gradient of the
    global batch, so 2 x batch 1 over gloo must give the weights of 1 x batch 2 (lora: no gate noise)."""
    common = ["steps=2", "adapter.variant=lora", "adapter.ranks=[8]", "optim.lr=1e-2"]
    single, _ = run(tmp_path, "single", "batch_size=2", *common)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    overrides = [o for o in TINY_RUN if not o.startswith("batch_size")] + ["batch_size=1", *common, f"output_dir={tmp_path / 'ddp'}"]
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}", "--master_addr=127.0.0.1",
         "-m", "gara_model.train", *overrides],
        check=True, env=env, timeout=300,
    )
    a, b = adapter_weights(single), adapter_weights(tmp_path / "ddp")
    rank0_alone = adapter_weights(run(tmp_path, "rank0", "batch_size=1", *common)[0])
    for name in a:
        # Adam turns float-order differences of ~1e-8 into at most ~1e-5; rank 0 training alone is ~lr = 1e-2 away
        assert torch.allclose(a[name], b[name], atol=1e-4), name
    assert max((b[n] - rank0_alone[n]).abs().max().item() for n in b) > 1e-3
    assert any(not torch.equal(a[n], torch.zeros_like(a[n])) for n in a if n.endswith("lora_B"))


def test_non_finite_loss_stops_the_run(tmp_path):
    with pytest.raises(FloatingPointError, match="non-finite loss at step 0"):
        run(tmp_path, "nan", "steps=2", "optim.focal_weight=.nan")


def test_training_at_another_size_trains_the_ba_sam_coefficients(tmp_path):
    run_dir, _ = run(tmp_path, "basam", "steps=2", "model.image_size=64", "model.scaling=basam", "optim.lr=1e-2")
    _, base = read_adapter_config(run_dir / "adapter.safetensors")
    assert (base["image_size"], base["scaling"]) == (64, "basam")
    weights = adapter_weights(run_dir)  # build_model gives the embedded model the file's 64 + BA-SAM
    coefficients = [v for n, v in weights.items() if n.endswith("bias_mode.coefficient")]
    assert len(coefficients) == 2 and all(abs(c.item() - 0.1) > 1e-4 for c in coefficients)


def test_train_only_changes_just_that_submodule(tmp_path):
    run_dir, _ = run(tmp_path, "head", "steps=1", "model.train_base=true", "model.train_only=mask_decoder.iou_prediction_head",
                     "optim.iou_weight=1", "optim.lr=1e-2")
    torch.manual_seed(0)  # train() seeds with cfg.seed right before building the random-init base
    base = build_model("tiny", pretrained=False).state_dict()
    trained = build_model("tiny", run_dir / "sam.safetensors").state_dict()
    changed = {k for k, v in trained.items() if not torch.equal(v, base[k])}
    assert changed and all(k.startswith("mask_decoder.iou_prediction_head.") for k in changed)


def test_adapters_on_an_official_variant_need_its_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="'vit_b' needs a checkpoint"):
        run(tmp_path, "vit_b", "steps=1", "model.sam=vit_b")


@pytest.mark.parametrize("weights, overrides", [("adapter.safetensors", []), ("sam.safetensors", ["model.train_base=true", "optim.lr=1e-3"])])
def test_a_kill_between_the_two_files_of_a_checkpoint_loses_nothing(tmp_path, monkeypatch, weights, overrides):
    """The checkpoint at step 2 dies once its first file is in place (a kill between the two renames): the run
    keeps the consistent step-1 weights, and --resume from there ends exactly like a run that was never killed."""
    straight, _ = run(tmp_path, "straight", "steps=2", *overrides)
    first, _ = run(tmp_path, "first", "steps=1", *overrides)
    killed = tmp_path / "killed"
    replace, renamed = os.replace, []

    def replace_then_die_at_the_second_file_of_step_2(src, dst):
        if Path(dst).parent == killed:
            renamed.append(Path(dst).name)
            if len(renamed) == 4:
                raise OSError("simulated kill")
        replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_then_die_at_the_second_file_of_step_2)
    with pytest.raises(OSError, match="simulated kill"):
        run(tmp_path, "killed", "steps=2", "save_every=1", *overrides)
    monkeypatch.undo()
    kept, at_step_1 = load_file(killed / weights), load_file(first / weights)
    assert kept.keys() == at_step_1.keys() and all(torch.equal(kept[k], at_step_1[k]) for k in kept)
    resumed, _ = run(tmp_path, "killed", "steps=2", "resume=true", *overrides)
    final, uninterrupted = load_file(resumed / weights), load_file(straight / weights)
    assert all(torch.equal(final[k], uninterrupted[k]) for k in uninterrupted)


def test_weights_and_train_state_of_different_steps_are_refused(tmp_path):
    run_dir, _ = run(tmp_path, "mixed", "steps=2")
    earlier, _ = run(tmp_path, "earlier", "steps=1")
    train_state_file(run_dir).write_bytes(train_state_file(earlier).read_bytes())  # a step-1 state copied in by hand
    with pytest.raises(ValueError) as refused:
        run(tmp_path, "mixed", "steps=3", "resume=true")
    message = str(refused.value)
    assert "step 2" in message and "step 1" in message and "adapter.safetensors" in message and "\n" not in message, message


def test_a_truncated_train_state_is_refused_in_one_line_naming_it(tmp_path):
    run_dir, _ = run(tmp_path, "cut", "steps=1")
    state = train_state_file(run_dir)
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    with pytest.raises(ValueError) as refused:
        run(tmp_path, "cut", "steps=2", "resume=true")
    message = str(refused.value)
    assert str(state) in message and "truncated or corrupt" in message and "\n" not in message, message


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_checkpoint_files_follow_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        run_dir, _ = run(tmp_path, "modes", "steps=1")
    finally:
        os.umask(previous)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in (run_dir / "adapter.safetensors", train_state_file(run_dir))}
    assert set(modes.values()) == {0o666 & ~umask}, modes


def _children(pid):
    """Pids whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _running(pid):
    """False once the process has exited (a zombie waiting to be reaped counts as exited)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_until(condition, seconds):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_data_loader_workers_end_with_a_killed_trainer(tmp_path, signum):
    run_dir = tmp_path / "killed"
    overrides = [o for o in TINY_RUN if not o.startswith("data.num_workers")]
    trainer = subprocess.Popen(
        [sys.executable, "-m", "gara_model.train", *overrides, "data.num_workers=2", "steps=100000", "save_every=1",
         f"output_dir={run_dir}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"},
        # as from a terminal: a suite started in the background (`cmd &` without job control) ignores SIGINT, and
        # a Python started with SIGINT ignored keeps ignoring it (Ctrl-C cannot reach a background job either)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert _wait_until(lambda: (run_dir / "adapter.safetensors").exists(), 120), "no first checkpoint"
        workers = _children(trainer.pid)
        assert len(workers) == 2, workers
        trainer.send_signal(signum)
        trainer.wait(timeout=60)
        assert _wait_until(lambda: not any(_running(w) for w in workers), 1.0), [w for w in workers if _running(w)]
    finally:
        trainer.kill()
        trainer.wait()


def test_train_cli_prints_one_error_line_for_user_errors_and_tracebacks_for_the_rest(tmp_path, capsys):
    from gara_model.train import main

    with pytest.raises(SystemExit) as exited:
        main([*TINY_RUN, "steps=2", f"output_dir={tmp_path / 'empty'}", "resume=true"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --resume: no checkpoint in ") and err.count("\n") == 1, err
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        main([*TINY_RUN, "steps=2", f"output_dir={tmp_path / 'nan'}", "optim.focal_weight=.nan"])


def test_a_fresh_run_never_overwrites_a_checkpoint_unless_told(tmp_path, capsys):
    from gara_model.train import main

    run_dir, _ = run(tmp_path, "kept", "steps=1")
    saved = {path.name: path.read_bytes() for path in (run_dir / "adapter.safetensors", train_state_file(run_dir))}
    with pytest.raises(FileExistsError) as refused:
        run(tmp_path, "kept", "steps=2")
    message = str(refused.value)
    assert str(run_dir) in message and "adapter.safetensors" in message and "--resume" in message, message
    assert "overwrite=true" in message and "\n" not in message, message
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main([*TINY_RUN, "steps=2", f"output_dir={run_dir}"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {run_dir} already holds a checkpoint")
    assert {name: (run_dir / name).read_bytes() for name in saved} == saved
    with pytest.raises(ValueError, match="resume and overwrite exclude each other"):
        run(tmp_path, "kept", "steps=2", "resume=true", "overwrite=true")
    run(tmp_path, "kept", "steps=1", "seed=1", "overwrite=true")  # afresh, as if the directory were empty
    fresh, _ = run(tmp_path, "fresh", "steps=1", "seed=1")
    assert (run_dir / "adapter.safetensors").read_bytes() != saved["adapter.safetensors"]
    overwritten, expected = load_file(run_dir / "adapter.safetensors"), load_file(fresh / "adapter.safetensors")
    assert overwritten.keys() == expected.keys() and all(torch.equal(v, expected[k]) for k, v in overwritten.items())


def test_config_yaml_is_the_resolved_config_written_whole_or_not_at_all(tmp_path, monkeypatch):
    run_dir, cfg = run(tmp_path, "cfg", "steps=1", "optim.lr=2e-3")
    written = (run_dir / "config.yaml").read_text()
    assert load_train_config(str(run_dir / "config.yaml")) == cfg  # --config takes it back
    replace = os.replace

    def killed_while_replacing_the_config(src, dst):
        if Path(dst).name == "config.yaml":
            raise OSError("simulated kill")
        replace(src, dst)

    monkeypatch.setattr(os, "replace", killed_while_replacing_the_config)
    with pytest.raises(OSError, match="simulated kill"):
        run(tmp_path, "cfg", "steps=2", "optim.lr=2e-3", "resume=true")
    assert (run_dir / "config.yaml").read_text() == written and not list(run_dir.glob("config.yaml.*"))


def test_the_process_group_is_released_when_training_fails(tmp_path):
    """cleanup_distributed runs in a finally: a run that stops on a non-finite loss still destroys the group."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        with pytest.raises(FloatingPointError):
            run(tmp_path, "nan", "steps=2", "optim.focal_weight=.nan")
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
