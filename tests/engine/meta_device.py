"""A stand-in accelerator for a machine without one: the meta device, policed.

A CPU-only torch cannot make CUDA tensors, and torch's FakeTensorMode with a fake
"cuda" device aborts the process on the first op with a device guard (embedding,
gather, indexing: "PyTorch is not linked with support for cuda devices"). The meta
device is a real second device on every build: a model moved there runs its whole
forward and backward pass, with shapes and no values.

`on_the_accelerator()` is a TorchFunctionMode that, while active:
- refuses any torch call that mixes devices: tensors on two devices (a 0-dim CPU
  tensor is a scalar, which CUDA accepts too), or a generator on another device
  than the tensors it draws for (the crash on a GPU that no CPU test could see);
- plays the transfer back to the host: `.cpu()`, `.to("cpu")`, `.tolist()`, `.item()`
  of a meta tensor give zeros of its shape (integers: `int_fill`, a token id the test
  picks), so the code after the transfer runs;
- answers True when a meta tensor is asked for its truth value (a generation loop's
  "all rows finished?"), so `generate` stops after its first step.
It counts the transfers to the host, so a test can hold a hot path to one per step.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

ACCELERATOR = torch.device("meta")
MOVES = (torch.Tensor.to, torch.Tensor.copy_, torch.Tensor.__setitem__)


class DeviceMixing(AssertionError):
    """A torch call met tensors (or a generator) on two devices: a GPU would refuse it."""


class PolicedMeta(TorchFunctionMode):
    def __init__(self, int_fill: int = 0):
        super().__init__()
        self.transfers: list[str] = []
        self.int_fill = int_fill

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors, generators = devices_in(args, kwargs)
        if len(tensors) > 1 and func not in MOVES:
            raise DeviceMixing(f"{name_of(func)} mixes tensors on {sorted(tensors)}")
        if generators and tensors and generators != tensors:
            raise DeviceMixing(f"{name_of(func)} draws for {sorted(tensors)} tensors from a "
                               f"{sorted(generators)} generator")
        source = args[0] if args else None
        if func is torch.Tensor.__getitem__ and len(args) == 2:
            args = (source, index_without_meta_scalars(args[1]))
        if isinstance(source, torch.Tensor) and source.device.type == "meta":
            host = host_copy(func, source, args[1:], kwargs, self.int_fill)
            if host is not None:
                self.transfers.append(name_of(func))
                return host()
        return func(*args, **kwargs)


def host_copy(func, source: torch.Tensor, rest: tuple, kwargs: dict, int_fill: int):
    """What a transfer of `source` to the host returns, played with zeros (None: not a transfer)."""
    def filled(dtype):
        return torch.full(source.shape, 0 if dtype.is_floating_point or dtype == torch.bool else int_fill, dtype=dtype)

    if func is torch.Tensor.cpu or (func is torch.Tensor.to and targets_cpu(rest, kwargs)):
        dtype = next((value for value in [*rest, kwargs.get("dtype")] if isinstance(value, torch.dtype)), source.dtype)
        return lambda: filled(dtype)
    if func is torch.Tensor.tolist:
        return lambda: filled(source.dtype).tolist()
    if func in (torch.Tensor.item, torch.Tensor.__int__, torch.Tensor.__index__, torch.Tensor.__float__):
        return lambda: torch.zeros((), dtype=source.dtype).item()
    if func is torch.Tensor.__bool__:
        return lambda: True
    return None


def index_without_meta_scalars(index):
    """An index whose 0-dim meta tensors (a length generation computed on the device) read as 1."""
    def plain(part):
        if isinstance(part, torch.Tensor) and part.device.type == "meta" and part.dim() == 0:
            return 1
        if isinstance(part, slice):
            return slice(plain(part.start), plain(part.stop), plain(part.step))
        return part
    return tuple(plain(part) for part in index) if isinstance(index, tuple) else plain(index)


def targets_cpu(rest: tuple, kwargs: dict) -> bool:
    for value in [*rest, kwargs.get("device")]:
        if isinstance(value, (str, torch.device)) and torch.device(value).type == "cpu":
            return True
        if isinstance(value, torch.Tensor) and value.device.type == "cpu":
            return True
    return False


def devices_in(args, kwargs) -> tuple[set[str], set[str]]:
    flat, _ = tree_flatten((args, kwargs))
    tensors = {value.device.type for value in flat
               if isinstance(value, torch.Tensor) and not (value.device.type == "cpu" and value.dim() == 0)}
    generators = {value.device.type for value in flat if isinstance(value, torch.Generator)}
    return tensors, generators


def name_of(func) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))


@contextmanager
def on_the_accelerator(int_fill: int = 0):
    """Police every torch call while active; yields the mode (its `.transfers` to the host)."""
    with PolicedMeta(int_fill) as mode:
        yield mode
