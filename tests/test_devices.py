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
