"""ADA's whole-pixel moves are exact index operations: R1 through every ADA transform needs no
grid_sample (whose double backward older torch releases lack), and each move is a permutation of
pixels, matching pad-and-crop / rot90 exactly."""

import torch
import torch.nn.functional as F

from stylegan import losses
from stylegan.augment import DiscriminatorAugment, IntegerTranslate, Rotate90
from stylegan.networks import Discriminator


def test_r1_through_every_ada_transform_needs_no_grid_sample(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("grid_sample: its double backward is missing in older torch")

    monkeypatch.setattr(F, "grid_sample", refuse)
    torch.manual_seed(0)
    augment = DiscriminatorAugment(mode="ada", initial_p=1.0)
    D = Discriminator(resolution=16, channel_base=128, channel_max=16)
    real = (torch.rand(4, 3, 16, 16) * 2 - 1).requires_grad_(True)
    r1 = losses.r1_penalty(D(augment(real)), real)
    r1.backward()
    grads = [p.grad for p in D.parameters() if p.grad is not None]
    assert grads and all(g.isfinite().all() for g in grads)


def test_translation_is_reflect_pad_and_crop_and_rotation_is_rot90():
    x = torch.randn(6, 3, 8, 8)
    torch.manual_seed(1)
    moved, turned = IntegerTranslate(0.25)(x), Rotate90()(x)
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    for n in range(6):
        crops = [padded[n, :, 2 - dy : 10 - dy, 2 - dx : 10 - dx] for dy in range(-2, 3)
                 for dx in range(-2, 3)]  # fmt: skip
        assert any(torch.equal(moved[n], c) for c in crops)
        assert any(torch.equal(turned[n], torch.rot90(x[n], k, dims=(1, 2))) for k in (1, 2, 3))
