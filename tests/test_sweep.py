"""Sweep planning: cells, config validation and hashing, thread choice."""

from __future__ import annotations

import os

import pytest
import torch

from initlab.data import load
from initlab.sweep import compare
from initlab.sweep.chunks import make_chunks
from initlab.sweep.config import CompareConfig, parse_seeds
from initlab.sweep.driver import choose_threads, torch_threads


def test_grid_members_are_lr_major_and_labelled_by_rate():
    config = CompareConfig(schemes=("he_normal", "zeros"), seeds=(0, 1), lr_grid=(0.1, 0.01), chunk_size=3)
    assert config.lr_grid == (0.01, 0.1)  # sorted
    keys = [m.key for m in config.members]
    assert keys[:4] == [("he_normal@lr=0.01", 0), ("zeros@lr=0.01", 0), ("he_normal@lr=0.01", 1), ("zeros@lr=0.01", 1)]
    assert len(set(keys)) == 8 and {m.lr for m in config.members} == {0.01, 0.1}
    assert CompareConfig(schemes=("he_normal",)).members[0].key == ("he_normal", 0)  # fixed lr: the plain name


def test_cells_cover_every_member_once_in_seed_major_chunks():
    config = CompareConfig(schemes=("he_normal", "zeros", "xavier_uniform"), seeds=(0, 1, 2, 3), chunk_size=5)
    cells = make_chunks(config)
    members = [m for c in cells for m in c.members]
    assert members == config.members and len(set(members)) == 12
    assert [len(c.members) for c in cells] == [5, 5, 2]
    assert [m.key for m in cells[0].members[:3]] == [("he_normal", 0), ("zeros", 0), ("xavier_uniform", 0)]
    assert len({c.key for c in cells}) == 3


def test_equal_settings_hash_alike_and_aliases_are_canonical():
    a = CompareConfig(schemes=("kaiming", "glorot"), lr=1, reference="he")
    b = CompareConfig(schemes=("he_normal", "xavier_uniform"), lr=1.0, reference="he_normal")
    assert a == b and a.config_hash() == b.config_hash()
    assert a.config_hash() != CompareConfig(schemes=("he_normal", "xavier_uniform"), lr=0.5).config_hash()
    assert CompareConfig.from_dict(a.to_dict()) == a


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("schemes", ("he_normal", "he"), "each scheme once"),
        ("seeds", (), "seeds"),
        ("epochs", 0, "epochs"),
        ("lr", 0.0, "lr"),
        ("momentum", 1.0, "momentum"),
        ("target", 0.0, "target"),
        ("optimizer", "lbfgs", "optimizer"),
        ("activation", "relux", "relux"),
    ],
)
def test_bad_config_names_the_value(field, value, needle):
    with pytest.raises(ValueError, match=needle):
        CompareConfig(**{field: value})


def test_parse_seeds_forms():
    assert parse_seeds("3") == (0, 1, 2)
    assert parse_seeds("10-12") == (10, 11, 12)
    assert parse_seeds("4,2") == (4, 2)
    with pytest.raises(ValueError, match="^seeds: "):  # the library names its parameter; the CLI says --seeds
        parse_seeds("x")


def test_threads_one_for_small_steps_all_cores_for_large():
    digits = load("digits")
    assert choose_threads(CompareConfig(), digits) == 1
    wide = CompareConfig(width=1024, depth=3, batch_size=256)
    assert choose_threads(wide, digits) == max(1, os.cpu_count() or 1)


def test_torch_threads_restores_the_setting():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_bad_threads_fail_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="threads must be an integer >= 1; got 0"):
        compare(CompareConfig(seeds=(0,), epochs=1), store=tmp_path / "s.sqlite", threads=0)
    assert not (tmp_path / "s.sqlite").exists()


def test_reference_defaults_to_he_or_the_first_scheme_and_must_be_compared():
    assert CompareConfig(schemes=("zeros", "he")).reference == "he_normal"
    assert CompareConfig(schemes=("xavier_uniform", "zeros")).reference == "xavier_uniform"
    with pytest.raises(ValueError, match=r"reference 'he_normal' is not among the schemes \(xavier_uniform, zeros\)"):
        CompareConfig(schemes=("xavier_uniform", "zeros"), reference="he_normal")


def test_bias_init_is_refused_beside_the_auto_policy():
    with pytest.raises(ValueError, match="the 'auto' policy sets every bias itself"):
        CompareConfig(schemes=("auto", "he_normal"), bias_init="normal(std=0.1)")
    assert CompareConfig(schemes=("auto", "he_normal")).bias_init == "zeros"


def test_a_named_data_dir_must_exist(tmp_path):
    with pytest.raises(ValueError, match="is not a directory"):
        load("fashion-mnist", data_dir=tmp_path / "missing")


def test_momentum_is_refused_with_adam():
    with pytest.raises(ValueError, match="momentum=0.5 applies to SGD only"):
        CompareConfig(optimizer="adam", momentum=0.5)
    assert CompareConfig(optimizer="adam").momentum == 0.9
