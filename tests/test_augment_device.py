"""ADA and DiffAugment on an accelerator: no tensor crosses between host and device in a call.

A CPU has no second device, so :class:`Accelerator` emulates one: tensors "on the device" are
:class:`OnDevice` wrappers (they report ``device="meta"`` and compute on the CPU), factory
functions asked for that device make them, and every copy between the host and the device
(``.to()``, ``.cpu()``, ``copy_``, ``.item()``), or a host tensor fed to a device op, is recorded.
On a GPU each of those is a blocking copy or an error. kornia's ``ColorJiggle`` and
``RandomErasing`` draw their parameters on the device, then copy them to the host and back.
"""

import pytest
import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from stylegan.augment import DiscriminatorAugment

aten = torch.ops.aten
DEVICE = torch.device("meta")  # the emulated accelerator's name


class OnDevice(torch.Tensor):
    """A CPU tensor that says it is on :data:`DEVICE`."""

    @staticmethod
    def __new__(cls, elem: torch.Tensor) -> "OnDevice":
        return torch.Tensor._make_wrapper_subclass(
            cls,
            elem.shape,
            strides=elem.stride(),
            storage_offset=elem.storage_offset(),
            dtype=elem.dtype,
            device=DEVICE,
            requires_grad=elem.requires_grad,
        )

    def __init__(self, elem: torch.Tensor) -> None:
        self.elem = elem

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return NotImplemented  # only inside Accelerator


def _on_device(t) -> bool:
    return isinstance(t, OnDevice)


def _on_host(t) -> bool:
    return isinstance(t, torch.Tensor) and not isinstance(t, OnDevice)


class Accelerator(TorchDispatchMode):
    """Runs every op on the CPU, with :class:`OnDevice` standing for device tensors; records
    each host/device crossing in ``transfers``."""

    def __init__(self) -> None:
        super().__init__()
        self.transfers: list[str] = []

    def _crossing(self, func, args, kwargs, device_in: bool, target) -> str | None:
        to_device = target == DEVICE
        to_host = target is not None and not to_device
        if func is aten._to_copy.default:
            if _on_host(args[0]) and to_device:
                return "host -> device"
            if _on_device(args[0]) and to_host:
                return "device -> host"
        elif func is aten.copy_.default:
            if _on_device(args[0]) != _on_device(args[1]):
                return "host -> device" if _on_device(args[0]) else "device -> host"
        elif func is aten._local_scalar_dense.default and device_in:
            return "device -> host (item)"
        elif device_in:
            leaves = pytree.tree_leaves((args, kwargs))
            if any(_on_host(t) and t.dim() > 0 for t in leaves):
                return "a host tensor in a device op"
        return None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        device_in = any(_on_device(t) for t in pytree.tree_leaves((args, kwargs)))
        target = kwargs.get("device")
        target = None if target is None else torch.device(target)
        crossing = self._crossing(func, args, kwargs, device_in, target)
        if crossing:
            self.transfers.append(f"{crossing}: {func}")
        if target == DEVICE:
            kwargs["device"] = torch.device("cpu")
        wrappers = {}

        def unwrap(t):
            if _on_device(t):
                wrappers[id(t.elem)] = t
                return t.elem
            return t

        out = func(*pytree.tree_map(unwrap, args), **pytree.tree_map(unwrap, kwargs))
        on_device = target == DEVICE or (device_in and target is None)

        def wrap(t):
            if not (isinstance(t, torch.Tensor) and on_device):
                return t
            return wrappers[id(t)] if id(t) in wrappers else OnDevice(t)  # in place: the same

        return pytree.tree_map(wrap, out)


@pytest.fixture
def accelerator(monkeypatch):
    originals = (torch.tensor, torch.as_tensor)

    def tensor(data, *args, device=None, **kwargs):
        made = originals[0](data, *args, **kwargs)
        return made if device is None else made.to(device)

    def as_tensor(data, *args, device=None, **kwargs):
        if isinstance(data, torch.Tensor):
            return originals[1](data, *args, device=device, **kwargs)
        made = originals[1](data, *args, **kwargs)
        return made if device is None else made.to(device)

    # torch.tensor(data, device=...) would build a real (empty) meta tensor.
    monkeypatch.setattr(torch, "tensor", tensor)
    monkeypatch.setattr(torch, "as_tensor", as_tensor)
    with Accelerator() as mode:
        yield mode


def test_the_emulator_sees_a_host_parameter_and_a_host_read(accelerator):
    x = torch.rand(4, 3, 8, 8, device=DEVICE)
    assert isinstance(x, OnDevice) and x.device == DEVICE
    accelerator.transfers.clear()
    torch.where(torch.rand(4, 1, 1, 1, device=x.device) < 0.5, x, -x)
    assert accelerator.transfers == []
    x * torch.tensor([1.0, 2.0, 3.0, 4.0]).to(x.device).view(4, 1, 1, 1)  # torch.tensor(list)
    x * torch.rand(4, device=x.device).cpu().to(x.device).view(4, 1, 1, 1)  # a .cpu() detour
    assert accelerator.transfers == [
        "host -> device: aten._to_copy.default",
        "device -> host: aten._to_copy.default",
        "host -> device: aten._to_copy.default",
    ]


@pytest.mark.parametrize("mode", ["ada", "diffaugment"])
def test_augment_draws_and_keeps_everything_on_the_images_device(accelerator, mode):
    augment = DiscriminatorAugment(mode=mode, initial_p=1.0)  # every transform on every sample
    augment._apply(lambda t: t.to(DEVICE))  # what module.to("cuda") does
    images = torch.rand(4, 3, 16, 16, device=DEVICE) * 2 - 1
    accelerator.transfers.clear()
    with torch.no_grad():
        out = augment(images)
    assert isinstance(out, OnDevice) and out.shape == images.shape
    assert accelerator.transfers == []
    assert not torch.equal(out.elem, images.elem)  # it did augment
