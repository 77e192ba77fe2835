"""Batched augmentation and the learning-rate schedule, against hand-checkable cases."""

from __future__ import annotations

import pytest
import torch

from fer_yolo.train.augment import AugmentConfig, geometric, mix
from fer_yolo.train.schedule import warmup_cosine

OFF = AugmentConfig(**dict.fromkeys(AugmentConfig.__dataclass_fields__, 0.0))


def test_geometric_with_no_jitter_is_the_identity_or_the_exact_mirror():
    torch.manual_seed(0)
    x = torch.rand(3, 1, 8, 8)
    assert torch.allclose(geometric(x, OFF), x, atol=1e-6)
    mirrored = geometric(x, AugmentConfig(**{**OFF.__dict__, "flip": 1.0}))
    assert torch.allclose(mirrored, x.flip(3), atol=1e-6)


def test_mixed_targets_match_the_mixed_pixels():
    # Crop k is constant k/6 and has class k: after CutMix (pasted area) or MixUp (blend), each crop's mean
    # pixel must equal its target-weighted class value, and each target must still sum to 1.
    values = torch.arange(7, dtype=torch.float32) / 6
    x = values.view(7, 1, 1, 1).expand(7, 1, 16, 16).clone()
    target = torch.eye(7)
    kinds = set()
    for seed in range(30):
        torch.manual_seed(seed)
        mixed, t = mix(x, target, p=1.0)
        assert torch.allclose(t.sum(1), torch.ones(7))
        assert torch.allclose(mixed.mean(dim=(1, 2, 3)), t @ values, atol=1e-5)
        uniform = bool((mixed.amax(dim=(1, 2, 3)) - mixed.amin(dim=(1, 2, 3)) < 1e-6).all())
        assert (t.amax(1) < 1 - 1e-3).any() and not torch.equal(mixed, x)  # something was really mixed
        kinds.add("mixup" if uniform else "cutmix")
    assert kinds == {"mixup", "cutmix"}


def test_mix_with_probability_zero_changes_nothing():
    x, target = torch.rand(4, 1, 8, 8), torch.eye(7)[:4]
    mixed, t = mix(x, target, p=0.0)
    assert mixed is x and t is target


def test_warmup_then_cosine_to_the_final_ratio():
    lr = [warmup_cosine(s, 110, 10, 0.1, 0.01) for s in range(111)]
    assert lr[0] == pytest.approx(0.01) and lr[9] == pytest.approx(0.1)  # linear warmup over 10 steps
    assert lr[10] == pytest.approx(0.1)  # cosine starts at the peak
    assert lr[60] == pytest.approx(0.001 + 0.099 * 0.5)  # half-way: the mean of peak and floor
    assert lr[110] == pytest.approx(0.001)
    assert all(a >= b for a, b in zip(lr[10:], lr[11:]))
