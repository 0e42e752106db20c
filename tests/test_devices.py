"""tdyn.devices: CPU by default, 'auto' picks CUDA only when present."""

import pytest
import torch

from tdyn.devices import describe_device, resolve_device


def test_cpu_is_the_default():
    assert resolve_device() == torch.device("cpu")
    assert describe_device("cpu") == "cpu"


def test_auto_follows_cuda_availability():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


def test_unknown_device_is_refused():
    with pytest.raises(ValueError, match="device='cuda:0'"):
        resolve_device("cuda:0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="only meaningful without a GPU")
def test_explicit_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device("cuda")


def test_torch_threads_sets_the_cpu_count_and_restores_it():
    from tdyn.devices import torch_threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with torch_threads("cpu", 1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with torch_threads("cpu", None):
            assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), torch_threads("cpu", 1):
            raise RuntimeError("restored even when the block fails")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
