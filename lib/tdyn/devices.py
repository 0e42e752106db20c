"""Choosing where torch computes: CPU by default, ``"auto"`` picks CUDA when present."""

from __future__ import annotations

from contextlib import contextmanager

DEVICE_CHOICES = ("cpu", "auto", "cuda")


def resolve_device(device: str = "cpu"):
    """Return a ``torch.device`` for ``"cpu"``, ``"cuda"`` (must be available) or ``"auto"``."""
    import torch

    if device not in DEVICE_CHOICES:
        raise ValueError(f"device={device!r} is not allowed; choose one of {DEVICE_CHOICES}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but torch sees no CUDA device")
    return torch.device(device)


def describe_device(device) -> str:
    """A short human-readable name of a torch device (the GPU model for CUDA)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


@contextmanager
def torch_threads(device, threads: int | None):
    """Run the block with torch's intra-op threads set to ``threads`` when ``device`` is the
    CPU (None, or a GPU device, leaves the setting alone); the previous count is restored."""
    import torch

    previous = torch.get_num_threads()
    if torch.device(device).type == "cpu" and threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
