"""The progressive schedule: resolution, alpha, phase, batch size and lr from images seen."""

import itertools

import pytest

from stylegan.errors import ConfigError
from stylegan.schedule import FADE, STABLE, ProgressiveSchedule


@pytest.fixture
def schedule():
    return ProgressiveSchedule(
        final_resolution=32,
        start_resolution=8,
        fade_kimg=1,
        stable_kimg=2,
        total_kimg=20,
        batch_size={8: 16, 32: 4},
        lr={8: 0.001, 16: 0.002},
    )


@pytest.mark.parametrize(
    ("images", "resolution", "alpha", "phase", "phase_index"),
    [
        (0, 8, 1.0, STABLE, 0),
        (1999, 8, 1.0, STABLE, 0),
        (2000, 16, 0.0, FADE, 1),
        (2250, 16, 0.25, FADE, 1),
        (2999, 16, 0.999, FADE, 1),
        (3000, 16, 1.0, STABLE, 2),
        (4999, 16, 1.0, STABLE, 2),
        (5000, 32, 0.0, FADE, 3),
        (5500, 32, 0.5, FADE, 3),
        (6000, 32, 1.0, STABLE, 4),
        (19_999, 32, 1.0, STABLE, 4),  # the final resolution trains until total_kimg
        (50_000, 32, 1.0, STABLE, 4),
    ],
)
def test_state_follows_fade_and_stable_phases(
    schedule, images, resolution, alpha, phase, phase_index
):
    state = schedule.state_at(images)
    assert state.resolution == resolution
    assert state.alpha == pytest.approx(alpha)
    assert state.phase == phase
    assert state.phase_index == phase_index


def test_alpha_rises_linearly_during_a_fade(schedule):
    alphas = [schedule.state_at(2000 + i * 100).alpha for i in range(10)]
    steps = [b - a for a, b in itertools.pairwise(alphas)]
    assert all(s == pytest.approx(0.1) for s in steps)


def test_batch_size_and_lr_use_the_nearest_lower_entry(schedule):
    assert [schedule.state_at(i).batch_size for i in (0, 2500, 6000)] == [16, 16, 4]
    assert [schedule.state_at(i).lr for i in (0, 2500, 6000)] == [0.001, 0.002, 0.002]


def test_resolutions_and_time_to_reach_final(schedule):
    assert schedule.resolutions == [8, 16, 32]
    assert schedule.images_to_reach_final() == 6000
    assert schedule.total_images == 20_000


def test_non_progressive_schedule_has_alpha_one_throughout():
    flat = ProgressiveSchedule(
        final_resolution=64, start_resolution=64, total_kimg=5, batch_size={64: 8}, lr={64: 1e-3}
    )
    assert flat.resolutions == [64]
    for images in (0, 1000, 10_000):
        state = flat.state_at(images)
        assert (state.resolution, state.alpha, state.phase) == (64, 1.0, STABLE)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"final_resolution": 48}, "power of two"),
        ({"final_resolution": 16, "start_resolution": 32}, "above the final"),
        ({"final_resolution": 16, "batch_size": {16: 8}}, "batch_size has no entry for 8px"),
        ({"final_resolution": 16, "stable_kimg": 0}, "stable_kimg"),
    ],
)
def test_bad_schedules_are_refused_with_a_clear_message(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ProgressiveSchedule(**kwargs)
