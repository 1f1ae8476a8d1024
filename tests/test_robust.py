"""Non-finite values never hang or crash anything; memory is estimated before any work (issue #16)."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys

import pytest
import torch
from torch import nn

from initlab.diagnose import diagnose, duplicate_rows
from initlab.diagnose.symmetry import nonfinite_rows
from initlab.engine import memory
from initlab.errors import UserError
from initlab.models import build
from initlab.schemes import get_scheme
from initlab.stats import summarize

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def initlab(*args, env=None, cwd=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "initlab", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**ENV, **(env or {})},
        cwd=cwd,
    )


def one_line_exit_2(res, *needles):
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@contextlib.contextmanager
def time_limit(seconds: int):
    """Fail instead of hanging: SIGALRM interrupts a Python loop that never ends."""

    def hung(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: the former infinite loop is back")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ---- 1. non-finite values -----------------------------------------------------------------------


def test_duplicate_rows_with_nan_and_inf_rows_ends_and_never_pairs_them(gen):
    m = torch.randn(6, 5, generator=gen)
    m[1] = m[0]  # a real pair of twins
    m[2] = math.nan
    m[3] = math.nan  # two all-NaN rows: NaN equals nothing, so not twins
    m[4, 2] = math.inf
    with time_limit(20):
        twins = duplicate_rows(m)
    assert twins.tolist() == [True, True, False, False, False, False]
    assert nonfinite_rows(m).tolist() == [False, False, True, True, True, False]


def test_duplicate_rows_of_an_all_nan_matrix_ends(gen):
    with time_limit(20):
        assert not duplicate_rows(torch.full((50, 8), math.nan)).any()


def test_diagnose_with_overflowing_weights_ends_and_reports_nonfinite_outputs(gen):
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 1e15, generator=gen)
    x = torch.randn(64, 16, generator=gen)
    with time_limit(60):
        result = diagnose(model, x, generator=torch.Generator().manual_seed(0))
    flagged = result.flagged("nonfinite")
    assert flagged, result.summary()
    assert all(f.layer in {layer.name for layer in result.layers if layer.nonfinite_frac > 0} for f in flagged)
    assert result.layers[0].nonfinite_frac == 0.0  # the first layer is still finite (~1e17)
    assert "NaN or inf" in result.summary()


def test_diagnose_cli_with_std_1e15_ends_with_a_nonfinite_flag():
    res = initlab(
        "diagnose", "--scheme", "random_normal", "--param", "std=1e15", "--width", "32", "--batch", "32", timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert "nonfinite:" in res.stdout


@pytest.mark.parametrize(
    "spec,dtype",
    [
        (("random_normal", {"std": 1e30}), torch.float32),
        (("constant", {"val": 1e20}), torch.float32),
        (("he_normal", {}), None),  # placeholder replaced below: he_normal is fine in every dtype
        (("constant", {"val": 300.0}), torch.float16),
    ],
)
def test_scheme_draws_absurd_for_the_dtype_are_refused(spec, dtype, gen):
    name, params = spec
    scheme = get_scheme(name, **params)
    if dtype is None:
        for dt in (torch.float16, torch.bfloat16, torch.float32):
            assert torch.isfinite(scheme.sample((64, 32), generator=gen, dtype=dt)).all()
        return
    with pytest.raises(UserError, match=r"allowed: \|w\| <= .*Lower the scale parameter"):
        scheme.sample((64, 32), generator=gen, dtype=dtype)
    # the same scheme one step below the limit is accepted: the rule is the dtype's range
    limit = math.sqrt(torch.finfo(dtype).max)
    assert get_scheme("constant", val=0.5 * limit).sample((4, 4), generator=gen, dtype=dtype).isfinite().all()


def test_compare_with_an_absurd_scheme_is_refused_before_the_store_is_touched(tmp_path):
    store = tmp_path / "s.sqlite"
    res = initlab(
        "compare",
        "--schemes",
        "random_normal(std=1e30),he_normal",
        "--seeds",
        "2",
        "--epochs",
        "1",
        "--width",
        "8",
        "--store",
        str(store),
        timeout=120,
    )
    one_line_exit_2(res, "random_normal", "1e+30", "allowed")
    assert not store.exists()


def test_statistics_skip_nonfinite_values_and_count_only_finite_ones():
    s = summarize([0.9, math.nan, 0.8, math.inf, None, 0.85])
    assert s.n == 3 and s.mean == pytest.approx(0.85)
    empty = summarize([math.nan, math.nan])
    assert empty.n == 0 and math.isnan(empty.mean)


# ---- 2. memory pre-flight -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "arch,shape", [("mlp", (1, 8, 8)), ("cnn", (1, 12, 12)), ("resmlp", (20,)), ("rescnn", (3, 8, 8))]
)
def test_footprint_counts_the_parameters_of_the_real_model(arch, shape):
    fp = memory.model_footprint(arch, input_shape=shape, num_classes=7, width=12, depth=2)
    real = build(arch, input_shape=shape, num_classes=7, width=12, depth=2)
    assert fp.parameters == sum(p.numel() for p in real.parameters())
    assert fp.largest_activation <= fp.activations


@pytest.mark.parametrize(
    "arch,shape",
    [("mlp", (1, 8, 8)), ("cnn", (1, 12, 12)), ("resmlp", (20,)), ("rescnn", (3, 8, 8)), ("transformer", (16,))],
)
def test_the_cpu_shape_pass_of_a_small_model_equals_the_meta_pass(arch, shape, monkeypatch):
    small = memory.model_footprint(arch, input_shape=shape, num_classes=7, width=16, depth=2)
    monkeypatch.setattr(memory, "SHAPE_PASS_ON_CPU_BYTES", 0)  # every model through the meta device
    assert memory.model_footprint(arch, input_shape=shape, num_classes=7, width=16, depth=2) == small


def test_the_cpu_shape_pass_does_not_import_sympy():
    """``to_empty`` of a meta model imports sympy (about 0.6 s of CPU in a fresh process)."""
    import subprocess
    import sys

    probe = (
        "import sys; from initlab.engine.memory import model_footprint; "
        "model_footprint('mlp', input_shape=(8,), num_classes=3, width=4, depth=1); "
        "print('sympy' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert res.stdout.strip() == "False"


def test_footprint_of_a_huge_mlp_allocates_nothing_and_adds_up_by_hand():
    fp = memory.model_footprint("mlp", input_shape=(784,), num_classes=10, width=100_000, depth=2)
    assert fp.parameters == 784 * 100_000 + 100_000 + 100_000**2 + 100_000 + 100_000 * 10 + 10
    # flatten 784, fc1 + act1, fc2 + act2 (100000 each), out 10
    assert fp.activations == 784 + 4 * 100_000 + 10 and fp.largest_activation == 100_000


def test_training_estimate_follows_its_formulas():
    fp = memory.Footprint(parameters=1000, activations=300, largest_activation=100)
    est = memory.training_estimate(fp, members=3, batch_size=8, optimizer="adam", eval_batch_size=16, data_bytes=5)
    parts = dict(est.parts)
    assert parts["parameters"] == parts["gradients"] == 3 * 1000 * 4
    assert parts["optimizer state"] == 2 * 3 * 1000 * 4 and parts["checkpoint"] == 3 * 3 * 1000 * 4
    assert parts["activations"] == 2 * 3 * 8 * 300 * 4 and parts["evaluation"] == 2 * 3 * 16 * 100 * 4
    assert est.total == sum(parts.values())
    assert dict(memory.training_estimate(fp, members=3, batch_size=8, optimizer="sgd").parts)["optimizer state"] == 0


def test_members_that_fit_is_the_largest_ensemble_within_the_headroom():
    fp = memory.Footprint(parameters=10_000, activations=1000, largest_activation=500)
    kw = dict(batch_size=32, optimizer="sgd", momentum=0.9, eval_batch_size=64, data_bytes=1000)
    one = memory.training_estimate(fp, members=1, **kw).total
    limit = int(7.5 * one / memory.HEADROOM)
    k = memory.members_that_fit(fp, 50, limit=limit, **kw)
    assert memory.training_estimate(fp, members=k, **kw).total <= memory.HEADROOM * limit
    assert memory.training_estimate(fp, members=k + 1, **kw).total > memory.HEADROOM * limit
    assert memory.members_that_fit(fp, 3, limit=limit, **kw) == 3  # the cap wins when more would fit
    assert memory.members_that_fit(fp, 50, limit=1, **kw) == 1


def test_available_memory_reads_the_override_and_rejects_nonsense(monkeypatch):
    monkeypatch.setenv(memory.ENV_LIMIT, "1.5G")
    assert memory.available_memory() == (int(1.5 * 2**30), memory.ENV_LIMIT)
    monkeypatch.setenv(memory.ENV_LIMIT, "lots")
    with pytest.raises(UserError, match="INITLAB_MEMORY_LIMIT='lots' is invalid"):
        memory.available_memory()
    monkeypatch.delenv(memory.ENV_LIMIT)
    n, source = memory.available_memory()
    assert n > 0 and source in ("MemAvailable", "cgroup", "sysconf", "unknown")


@pytest.mark.parametrize(
    "args,needles",
    [
        (["compare", "--width", "100000", "--seeds", "2", "--epochs", "1"], ["compare needs about", "--width"]),
        (["diagnose", "--batch", "100000000"], ["diagnose needs about", "--batch"]),
        (["diagnose", "--width", "20000"], ["diagnose needs about", "--width"]),
        (["plan", "--model", "mlp", "--width", "100000"], ["plan needs about", "--width"]),
    ],
)
def test_too_big_for_memory_is_one_line_before_any_work(args, needles, tmp_path):
    store = ["--store", str(tmp_path / "s.sqlite")] if args[0] == "compare" else []
    res = initlab(*args, *store, env={memory.ENV_LIMIT: "1G"}, cwd=tmp_path)
    line = one_line_exit_2(res, *needles)
    assert "available" in line and "lower" in line
    assert not (tmp_path / "s.sqlite").exists()


def test_compare_picks_the_chunk_size_from_the_estimate_and_says_so(tmp_path):
    from initlab.store import open_store

    store = tmp_path / "s.sqlite"
    args = [
        "compare",
        "--schemes",
        "he_normal,zeros",
        "--seeds",
        "3",
        "--epochs",
        "1",
        "--width",
        "64",
        "--store",
        str(store),
        "--out",
        str(tmp_path / "o"),
    ]
    fp = memory.model_footprint("mlp", input_shape=(64,), num_classes=10, width=64, depth=2)
    kw = dict(batch_size=32, optimizer="sgd", momentum=0.9, eval_batch_size=360, data_bytes=1797 * 64 * 4 + 1797 * 8)
    per_member = (
        memory.training_estimate(fp, members=1, **kw).total - memory.training_estimate(fp, members=0, **kw).total
    )
    fixed = memory.training_estimate(fp, members=0, **kw).total
    limit = int((fixed + 2.5 * per_member) / memory.HEADROOM)  # room for 2 members, not 3
    res = initlab(*args, env={memory.ENV_LIMIT: str(limit)})
    assert res.returncode == 0, res.stderr
    assert "(2 members per cell)" in res.stderr
    with open_store(store) as db:
        (experiment,) = db.list_experiments()
        assert experiment.extra["chunk_size"] == 2
        assert {r.extra["cell"] for r in db.runs(experiment.id)} == {0, 1, 2}  # 6 members in cells of 2
