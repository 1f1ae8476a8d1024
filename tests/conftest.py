import os

import pytest
import torch

# Tests run side by side on a 2-core machine: one intra-op thread keeps them predictable.
torch.set_num_threads(int(os.environ.get("INITLAB_TEST_THREADS", "1")))


@pytest.fixture
def gen():
    """A fresh generator with a fixed seed: every random draw in a test goes through one."""
    return torch.Generator().manual_seed(1234)
