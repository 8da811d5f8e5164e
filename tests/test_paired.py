"""aoi.paired against hand-computed values: the paired t interval, the pairing of runs by seed and
fold, the alpha chosen on validation data per fold."""

import math

import pandas as pd
import pytest

from aoi import paired

T_3_975 = 3.182446305284263  # t quantile, 3 degrees of freedom, 0.975 (statistical tables)
T_2_975 = 4.302652729911275  # 2 degrees of freedom


def test_paired_t_interval_of_hand_computed_differences():
    # d = 1, 2, 3, 4: mean 2.5, sample std sqrt(5/3) = 1.290994, standard error 0.645497, half 2.054260
    found = paired.paired_t_interval([1.0, 2.0, 3.0, 4.0])
    half = T_3_975 * math.sqrt(5 / 3) / 2
    assert found.n == 4 and found.mean == 2.5
    assert (found.low, found.high) == pytest.approx((2.5 - half, 2.5 + half))
    assert (found.low, found.high) == pytest.approx((0.445740, 4.554260), abs=1e-6)
    ninety = paired.paired_t_interval([1.0, 2.0, 3.0, 4.0], confidence=0.90)
    assert ninety.high - ninety.low < found.high - found.low


def test_an_interval_of_equal_differences_is_a_point_and_of_one_unit_is_unknown():
    assert paired.paired_t_interval([0.5, 0.5, 0.5]) == paired.Interval(3, 0.5, 0.5, 0.5)
    one = paired.paired_t_interval([0.25])
    assert one.n == 1 and one.mean == 0.25 and math.isnan(one.low) and math.isnan(one.high)


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [[1.0, 2.0]]])
def test_no_interval_of_no_or_non_finite_differences(bad):
    with pytest.raises(ValueError, match="non-empty list of finite numbers"):
        paired.paired_t_interval(bad)


def run(variant, seed, fold, accuracy, dataset="d", **values):
    method, alpha = ("tet", None) if variant == "TET" else ("str", float(variant[4:-1]))
    row = {"dataset": dataset, "T": 4, "detach_reset": False, "width": 1.0, "variant": variant, "method": method}
    return {**row, "alpha": alpha, "seed": seed, "fold": fold, "accuracy": accuracy, **values}


def test_runs_pair_with_the_tet_run_of_their_own_seed_and_fold():
    frame = pd.DataFrame(
        [
            run("TET", 0, 0, 0.80),
            run("TET", 0, 1, 0.70),
            run("TET", 1, 0, 0.90),
            run("STR(0.5)", 0, 0, 0.85),
            run("STR(0.5)", 0, 1, 0.60),
            run("STR(0.5)", 1, 0, 0.91),
            run("STR(0.5)", 1, 1, 0.99),  # no TET run of seed 1, fold 1: not paired
            run("TET", 0, 0, 0.10, dataset="e"),  # another dataset's TET: never paired with d
        ]
    )
    differences = paired.paired_differences(frame, ["accuracy"], ["dataset", "T"], ["seed", "fold"], "TET")
    assert differences[["seed", "fold"]].values.tolist() == [[0, 0], [0, 1], [1, 0]]
    assert differences["accuracy"].tolist() == pytest.approx([0.05, -0.10, 0.01])
    found = paired.intervals(differences, ["accuracy"], ["dataset", "variant"])
    assert found[["dataset", "variant", "n"]].values.tolist() == [["d", "STR(0.5)", 3]]
    # mean -0.04/3; sample std of 0.05, -0.10, 0.01: sqrt(((0.0633)^2 + (0.0867)^2 + (0.0233)^2) / 2)
    mean = -0.04 / 3
    std = math.sqrt(sum((d - mean) ** 2 for d in (0.05, -0.10, 0.01)) / 2)
    assert found.loc[0, "accuracy_mean"] == pytest.approx(mean)
    assert found.loc[0, "accuracy_high"] - mean == pytest.approx(T_2_975 * std / math.sqrt(3))


def test_two_tet_runs_of_one_unit_are_an_error():
    frame = pd.DataFrame([run("TET", 0, 0, 0.8), run("TET", 0, 0, 0.7), run("STR(0.5)", 0, 0, 0.9)])
    with pytest.raises(ValueError, match="more than one TET run per dataset, seed"):
        paired.paired_differences(frame, ["accuracy"], ["dataset"], ["seed"], "TET")


def validation_runs() -> pd.DataFrame:
    """Two folds, two seeds, STR at 0.1 and 0.5: fold 0's validation prefers 0.1 (0.9 vs 0.8), fold 1's
    ties on accuracy (0.85) and prefers 0.5 for its fewer exit steps (2.0 vs 3.0)."""
    rows = []
    for fold, scores in ((0, {0.1: (0.9, 3.0), 0.5: (0.8, 2.0)}), (1, {0.1: (0.85, 3.0), 0.5: (0.85, 2.0)})):
        for seed in (0, 1):
            rows.append(run("TET", seed, fold, 0.80, val_cutoff_accuracy=0.7, val_mean_exit_step=1.0))
            for alpha, (val, steps) in scores.items():
                test = 0.80 + alpha / 10 + fold / 100
                rows.append(run(f"STR({alpha})", seed, fold, test, val_cutoff_accuracy=val, val_mean_exit_step=steps))
    return pd.DataFrame(rows)


def test_each_fold_chooses_alpha_on_its_own_validation_data():
    chosen = paired.chosen_alphas(validation_runs(), ["dataset", "fold"])
    assert chosen.values.tolist() == [["d", 0, 0.1], ["d", 1, 0.5]]


def test_the_chosen_variant_compares_each_folds_choice_with_tet():
    frame = paired.with_variants(validation_runs().drop(columns="variant"))
    chosen = frame[frame["variant"] == paired.CHOSEN]
    assert chosen[["seed", "fold", "alpha"]].values.tolist() == [[0, 0, 0.1], [1, 0, 0.1], [0, 1, 0.5], [1, 1, 0.5]]
    found = paired.compare(frame, ["accuracy"])
    assert found["variant"].tolist() == ["STR(0.5)", "STR(0.1)", paired.CHOSEN]  # decreasing alpha, chosen last
    assert found["chosen"].tolist() == ["", "", "0.1 ×1, 0.5 ×1"]
    assert found["n"].tolist() == [4, 4, 4]
    # chosen: fold 0 (0.1): 0.01 + 0.00 twice; fold 1 (0.5): 0.05 + 0.01 twice -> mean 0.035
    assert found.loc[2, "accuracy_mean"] == pytest.approx(0.035)


def test_without_validation_data_there_is_no_chosen_variant():
    frame = validation_runs().drop(columns="variant").assign(val_cutoff_accuracy=float("nan"))
    assert paired.CHOSEN not in set(paired.with_variants(frame)["variant"])
