"""The saccade event-camera simulator and the ndigits dataset built with it."""

import dataclasses

import numpy as np
import pytest
from runs import absolute_paths
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from aoi.data import get_dataset
from aoi.data.encoding import events_to_frames
from aoi.data.simulator import SaccadeParams, simulate_saccades, simulate_saccades_batch

PARAMS = SaccadeParams()


@pytest.fixture(scope="module")
def digit_images():
    return load_digits().images[:200] / 16.0


@pytest.fixture(scope="module")
def recordings(digit_images):
    rngs = [np.random.default_rng([0, i]) for i in range(len(digit_images))]
    return simulate_saccades_batch(digit_images, rngs, PARAMS)


def test_events_are_tonic_structured_arrays_sorted_in_time(recordings):
    events = recordings[0]
    assert set(events.dtype.names) == {"x", "y", "t", "p"}
    assert events.dtype["x"] == np.int16 and events.dtype["t"] == np.int64
    assert np.all(np.diff(events["t"]) >= 0)
    assert events["t"].min() >= 0 and events["t"].max() <= PARAMS.duration_us
    assert events["x"].max() < PARAMS.sensor_size and events["y"].max() < PARAMS.sensor_size


def test_event_counts_and_polarity_balance_are_plausible(recordings):
    counts = np.array([len(e) for e in recordings])
    assert 200 < counts.mean() < 3000  # 256 pixels, 3 saccades
    on_fraction = np.array([e["p"].mean() for e in recordings])
    assert np.all((on_fraction > 0.3) & (on_fraction < 0.7))


def test_same_seed_same_events_other_seed_other_events(digit_images):
    image = digit_images[3]
    a = simulate_saccades(image, np.random.default_rng(1), PARAMS)
    b = simulate_saccades(image, np.random.default_rng(1), PARAMS)
    c = simulate_saccades(image, np.random.default_rng(2), PARAMS)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_a_sample_does_not_depend_on_its_batch(digit_images, recordings):
    alone = simulate_saccades(digit_images[5], np.random.default_rng([0, 5]), PARAMS)
    assert np.array_equal(alone, recordings[5])


def test_first_saccade_is_horizontal_so_only_vertical_edges_fire():
    bar = np.zeros((8, 8))
    bar[3:5, :] = 1.0  # a horizontal bar: no vertical edges inside the image
    quiet = dataclasses.replace(PARAMS, noise_rate_hz=0.0)
    events = simulate_saccades(bar, np.random.default_rng(0), quiet)
    first = events[events["t"] < quiet.saccade_duration_us]
    later = events[events["t"] >= quiet.saccade_duration_us]
    assert len(later) > 5 * len(first)


def test_no_motion_no_noise_means_no_events():
    still = dataclasses.replace(PARAMS, saccade_amplitude_px=0.0, noise_rate_hz=0.0)
    assert len(simulate_saccades(np.ones((8, 8)), np.random.default_rng(0), still)) == 0


def test_params_that_do_not_fit_the_sensor_are_rejected():
    with pytest.raises(ValueError, match="sensor"):
        SaccadeParams(sensor_size=12)


def test_frames_change_over_time_and_none_is_empty(recordings):
    frames = np.stack([events_to_frames(e, PARAMS.frame_sensor_size, 10).numpy() for e in recordings])
    assert frames.shape == (len(recordings), 10, 2, 16, 16)
    assert (frames.sum(axis=(2, 3, 4)) > 0).all()
    assert not np.allclose(frames[:, 0], frames[:, 5])


def test_early_frames_carry_less_information(tmp_path):
    train = get_dataset("ndigits", "train", root=tmp_path)
    test = get_dataset("ndigits", "test", root=tmp_path, limit=300)
    assert absolute_paths(train.provenance) == [] and train.provenance["cache"] == test.provenance["cache"]
    assert (tmp_path / train.provenance["cache"] / "params.json").is_file()  # relative to the cache root
    train = train.subset(np.arange(600))

    def features(ds, steps):
        return np.stack([ds[i][0][:steps].reshape(-1).numpy() for i in range(len(ds))]) / 10.0

    scores = {}
    for steps in (1, 10):
        model = LogisticRegression(max_iter=300).fit(features(train, steps), train.labels)
        scores[steps] = model.score(features(test, steps), test.labels)
    assert scores[1] + 0.04 < scores[10]
