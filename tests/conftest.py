import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    # Every test starts from the same random state, so numbers are reproducible one by one.
    torch.manual_seed(0)
