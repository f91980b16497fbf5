import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    # The model tests run many small forward/backward passes: one intra-op thread is as fast as
    # two for tensors this small, and far faster when other processes share the cores (OpenMP
    # threads spinning against each other slowed these tests 10-30x on a loaded 2-core machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
