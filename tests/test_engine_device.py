"""Devices: ``device=`` in the engine and ``--device`` on the CLI, checked on a CPU-only machine."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from initlab.engine import Member, TrainConfig, train
from initlab.engine.device import reproducible, resolve_device
from initlab.errors import UserError
from initlab.sweep.checkpoints import CheckpointPolicy
from test_cli_compare import ENV, SMALL, _one_line_exit_2
from test_engine import conv_bn_factory, mlp_factory, tiny_data

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
CONFIG = TrainConfig(epochs=2, batch_size=32, lr=0.05)
MEMBERS = [Member("he_normal", 0), Member("xavier_uniform", 1), Member("orthogonal", 2)]


def _bits(result) -> list[torch.Tensor]:
    return [t for _, t in sorted(result.state["params"].items())]


@pytest.mark.parametrize("factory,backend,shape", [(mlp_factory(), "mlp", (12,)), (conv_bn_factory, "vmap", (1, 12))])
def test_explicit_cpu_and_auto_give_the_bits_of_a_run_without_device(factory, backend, shape):
    data = tiny_data(shape=shape)
    plain = train(factory, MEMBERS, data, CONFIG, backend=backend)
    for device in ("cpu", torch.device("cpu")) + (() if torch.cuda.is_available() else ("auto",)):
        moved = train(factory, MEMBERS, data, CONFIG, backend=backend, device=device)
        assert all(torch.equal(a, b) for a, b in zip(_bits(plain), _bits(moved))), device
        assert [m.records for m in moved.members] != [] and moved.state["device"] == "cpu"
        assert [r.test_acc for m in moved.members for r in m.records] == [
            r.test_acc for m in plain.members for r in m.records
        ]


@no_cuda
def test_auto_is_cpu_without_cuda():
    assert resolve_device("auto") == torch.device("cpu") == resolve_device(None)


@no_cuda
@pytest.mark.parametrize(
    "spec,needle",
    [("cuda", "no CUDA"), ("cuda:7", "no CUDA"), ("tpu", "auto, cpu, cuda"), ("gpu:0", "'gpu:0'"), (3, "3")],
)
def test_a_device_that_does_not_exist_is_a_user_error(spec, needle):
    with pytest.raises(UserError, match="device") as info:
        resolve_device(spec)
    assert needle in str(info.value)
    with pytest.raises(UserError, match="device"):  # before any training
        train(mlp_factory(), MEMBERS, tiny_data(), CONFIG, device=spec)


def test_reproducible_leaves_cpu_settings_alone():
    before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    with reproducible(torch.device("cpu")):
        assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark) == before
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark) == before


@pytest.mark.parametrize(
    "text,seconds,epochs",
    [("120s", 120.0, None), ("5m", 300.0, None), ("3ep", None, 3), ("never", float("inf"), None), (None, 120.0, None)],
)
def test_checkpoint_policy_parses(text, seconds, epochs):
    policy = CheckpointPolicy.parse(text)
    assert (policy.seconds, policy.epochs) == (seconds, epochs)


def test_checkpoint_policy_never_after_the_last_epoch_and_by_epochs_or_time():
    every_two = CheckpointPolicy.parse("2ep")
    assert [every_two.due(e, 6) for e in range(1, 7)] == [False, True, False, True, False, False]
    always = CheckpointPolicy.parse("0s")
    assert [always.due(e, 3) for e in range(1, 4)] == [True, True, False]
    never = CheckpointPolicy.parse("never")
    assert not any(never.due(e, 10) for e in range(1, 11))


@pytest.mark.parametrize("text", ["often", "0ep", "1.5ep", "-3s", ""])
def test_checkpoint_policy_rejects_bad_values(text):
    with pytest.raises(UserError, match="checkpoint_every"):
        CheckpointPolicy.parse(text)


def _initlab(*args):
    return subprocess.run(
        [sys.executable, "-m", "initlab", *args], capture_output=True, text=True, timeout=300, env=ENV, check=False
    )


@no_cuda
@pytest.mark.parametrize(
    "device,needles", [("cuda", ["cuda", "no CUDA"]), ("cuda:7", ["cuda:7"]), ("tpu", ["tpu", "cpu"])]
)
def test_cli_refuses_a_missing_device_in_one_line_and_writes_nothing(device, needles, tmp_path):
    store = tmp_path / "s.sqlite"
    res = _initlab("compare", *SMALL, "--device", device, "--store", str(store), "--out", str(tmp_path / "o"))
    _one_line_exit_2(res, *needles)
    assert not store.exists() and not (tmp_path / "o").exists()
    res = _initlab("study", "bias", "--device", device, "--store", str(store), "--out", str(tmp_path / "st"))
    _one_line_exit_2(res, *needles)
    assert not store.exists() and not (tmp_path / "st").exists()


def test_cli_bad_checkpoint_every_is_one_line(tmp_path):
    res = _initlab("compare", *SMALL, "--checkpoint-every", "often", "--store", str(tmp_path / "s.sqlite"))
    _one_line_exit_2(res, "checkpoint_every", "often")


def test_bf16_autocast_changes_the_step_not_the_float32_state():
    from initlab.models import cnn

    def factory():
        return cnn((2, 6, 6), 3, width=4, depth=2)

    data = tiny_data(shape=(2, 6, 6))
    plain = train(factory, MEMBERS, data, CONFIG)
    bf16 = train(factory, MEMBERS, data, CONFIG, autocast="bf16")
    assert bf16.backend == "grouped" and bf16.state["autocast"] == "bf16"
    assert all(t.dtype == torch.float32 for t in bf16.state["params"].values())
    assert any(not torch.equal(a, b) for a, b in zip(_bits(plain), _bits(bf16)))  # the step really ran in bf16
    # A resumed run must keep the setting it was trained with.
    with pytest.raises(UserError, match="autocast"):
        train(factory, MEMBERS, data, TrainConfig(epochs=3, batch_size=32, lr=0.05), resume_state=bf16.state)


def test_bf16_autocast_skips_the_hand_written_mlp_path():
    assert train(mlp_factory(), MEMBERS, tiny_data(), CONFIG, autocast="bf16").backend == "vmap"
    with pytest.raises(UserError, match="backend 'mlp'.*autocast"):
        train(mlp_factory(), MEMBERS, tiny_data(), CONFIG, autocast="bf16", backend="mlp")
    with pytest.raises(UserError, match="autocast must be None or 'bf16'; got 'fp16'"):
        train(mlp_factory(), MEMBERS, tiny_data(), CONFIG, autocast="fp16")


def test_float32_compare_configs_keep_their_hash_and_bf16_changes_it():
    from initlab.sweep.config import CompareConfig

    plain = CompareConfig()
    assert "autocast" not in plain.to_dict()  # hashes of stored float32 experiments are unchanged
    assert CompareConfig(autocast="bf16").config_hash() != plain.config_hash()
    assert CompareConfig.from_dict(plain.to_dict()) == plain
    with pytest.raises(UserError, match="autocast"):
        CompareConfig(autocast="fp8")
