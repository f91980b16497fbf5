import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    # Every test starts from the same random state, so numbers are reproducible one by one.
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _speed_cache_in_tmp(tmp_path_factory, monkeypatch) -> None:
    # `auto` keeps what it timed in a user cache folder: tests keep theirs in a fresh tmp folder
    # (never the user's, and no test reads another's timings). Subprocesses inherit it.
    monkeypatch.setenv("SENET_CACHE_DIR", str(tmp_path_factory.mktemp("senet-cache")))
