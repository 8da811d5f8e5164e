"""Chunk schedules (aoi.schedule): the chooser on cost tables and exit distributions made by hand."""

import pytest

from aoi.schedule import choose_schedule, expected_seconds, steps_left, survival, uniform


def test_survival_is_the_share_of_samples_exiting_after_each_step():
    assert survival([2, 1, 0, 1]) == [1.0, 0.5, 0.25, 0.25]
    assert survival([0.0, 0.0, 3.0]) == [1.0, 1.0, 1.0]
    for bad in ([0, 0], [1, -1, 2]):
        with pytest.raises(ValueError, match="non-negative counts"):
            survival(bad)


def test_expected_seconds_charges_each_chunk_to_the_samples_that_reach_it():
    costs, exits = [1.0, 1.4, 2.0, 2.5], [2, 1, 0, 1]  # S = 1, 0.5, 0.25, 0.25
    assert expected_seconds((2, 2), costs, exits) == pytest.approx(1.4 + 1.4 * 0.25)
    assert expected_seconds((1, 1, 2), costs, exits) == pytest.approx(1 + 0.5 + 1.4 * 0.25)
    assert expected_seconds((4,), costs, exits) == pytest.approx(2.5)
    assert expected_seconds((3, 3), costs, exits) == pytest.approx(2.0 + 2.0 * 0.25)  # the last reaches past T


def test_the_chooser_finds_the_cheapest_schedule_computed_by_hand():
    # S = 1, 0.5, 0.25, 0.25. Every schedule of T = 4 by hand: (1,1,1,1) 2.0, (1,1,2) 1.85, (1,2,1) 1.95,
    # (2,1,1) 1.9, (1,3) 2.0, (3,1) 2.25, (2,2) 1.75, (4) 2.5; reaching past T: (2,3) 1.9, (3,3) 2.5, ...
    assert choose_schedule([1.0, 1.4, 2.0, 2.5], [2, 1, 0, 1]) == (2, 2)
    # a chunk costs 1 plus 1 per step, everyone exits at T: one chunk of T (T + 1) beats any split
    assert choose_schedule([1.0 + k for k in range(1, 6)], [0, 0, 0, 0, 7]) == (5,)
    # no fixed cost, everyone exits at step 1: one step, then the rest in one chunk (never run)
    assert choose_schedule([1.0, 2.0, 3.0], [5, 0, 0]) == (1, 2)


def test_one_sample_in_flight_takes_a_first_chunk_up_to_the_exits_continuous_batching_uniform_chunks():
    # nobody exits before step 3, half at 3, half at 4: S = 1, 1, 1, 0.5; costs of 1..4 steps:
    costs, exits = [1.0, 1.9, 2.0, 3.5], [0, 0, 2, 2]
    # any schedule by hand: (3,1) 2.0 + 0.5 = 2.5; (3,3) 3.0; (4) 3.5; (1,1,1,1) 3.5; (2,1,1) 3.4; (1,2,1) 3.4;
    # (1,3) 3.0; (2,2) 3.8; (1,1,2) 3.9; (2,3) 3.9
    assert choose_schedule(costs, exits, any_schedule=True) == (3, 1)
    # uniform: k=1 3.5, k=2 (2,2) 3.8, k=3 (3,3) 2.0 + 2.0 * 0.5 = 3.0, k=4 3.5
    assert choose_schedule(costs, exits, any_schedule=False) == (3, 3)


def test_the_chooser_needs_one_cost_per_chunk_size():
    with pytest.raises(ValueError, match="one value per chunk size 1..3"):
        choose_schedule([1.0, 2.0], [1, 1, 1])


def test_steps_left_in_the_chunk_that_holds_each_next_step():
    assert uniform(3, 10) == (3, 3, 3, 3)
    assert steps_left((3, 3, 3, 3), 10) == [3, 2, 1, 3, 2, 1, 3, 2, 1, 3]
    assert steps_left((4, 9), 10) == [4, 3, 2, 1, 9, 8, 7, 6, 5, 4]
    assert steps_left((1,) * 3, 3) == [1, 1, 1]
    for bad in [(), (0, 10), (5, 5, 1), (3, 3), (2.5, 8), (11,)]:
        with pytest.raises(ValueError, match="must be chunk sizes 1..10 that start before T = 10 and reach it"):
            steps_left(bad, 10)
