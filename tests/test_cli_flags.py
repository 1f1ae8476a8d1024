"""The CLI's one table from library parameter names to flags (``initlab.cli._flags``)."""

from __future__ import annotations

import pytest

from initlab.cli._flags import FLAGS_BY_COMMAND, as_flags
from initlab.sweep.config import parse_seeds


def test_a_leading_parameter_is_shown_as_the_commands_flag():
    with pytest.raises(ValueError, match="^seeds: ") as info:
        parse_seeds("x")
    message = str(info.value)  # the library names its parameter
    assert as_flags("compare", message) == "--" + message  # compare has --seeds
    assert as_flags("compare", "lr_grid: empty list") == "--lr-grid: empty list"


def test_other_messages_and_other_commands_pass_unchanged():
    assert as_flags("study", "seeds: a study needs at least 2 seeds") == "seeds: a study needs at least 2 seeds"
    assert as_flags("compare", "unknown scheme 'x'") == "unknown scheme 'x'"
    assert as_flags("compare", "activation: unknown") == "activation: unknown"  # not in the table
    assert as_flags(None, "seeds: x") == "seeds: x"


def test_every_flag_is_spelled_from_its_parameter():
    for table in FLAGS_BY_COMMAND.values():
        for param, flag in table.items():
            assert flag == "--" + param.replace("_", "-")
