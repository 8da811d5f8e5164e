"""The tables from hand-made result frames: cells, paper rows, the validation-only selection, HTML."""

import pandas as pd
import pytest
from frames import curve_frame, paper_frames, per_step_frame, summary_row

from aoi import table_render, tables
from aoi.profiles import load_profile
from aoi.provenance import code_fingerprint

REFERENCES = pd.DataFrame({"dataset": ["digits"], "paper_dataset": ["cifar10"]})


def summary():
    """digits: TET at 0.90 and 0.92 (seeds 0, 1), STR(0.5) at 0.50 (seed 0)."""
    return pd.DataFrame(
        [
            summary_row("STR(0.5)", 0, 0.5, cutoff_accuracy=0.5, accuracy_drop=0.0),
            summary_row("TET", 0, 0.90, cutoff_accuracy=0.89, accuracy_drop=0.01),
            summary_row("TET", 1, 0.92, cutoff_accuracy=0.90, accuracy_drop=0.02),
        ]
    )


def test_accuracy_table_cells_and_the_papers_rows():
    reported, _ = paper_frames()
    table = tables.accuracy_table(summary(), reported, REFERENCES)
    assert table["source"].tolist() == ["aoi (T=4)"] * 2 + ["paper (T=4)"] * 2
    assert table["method"].tolist() == ["TET", "STR(0.5)", "TET", "STR(0.1)"]  # TET first
    assert (
        table["reset gradient"].tolist() == ["through reset"] * 2 + ["toolkit's (assumed)"] * 2
    )  # the paper is silent
    ours = table.iloc[0]
    assert ours["accuracy at T (%)"] == "91.00±1.41"  # mean 0.91, sample std 0.01414 of 0.90/0.92
    assert ours["w/ cutoff (%)"] == "89.50±0.71"
    assert ours["drop (pp)"] == "1.50±0.71"
    assert ours["seeds"] == "2"
    paper = table.iloc[2]
    assert (paper["accuracy at T (%)"], paper["w/ cutoff (%)"], paper["drop (pp)"]) == (
        "90.00±0.50",
        "89.00±0.50",
        "1.00",
    )
    assert paper["mean exit step"] == "≈2" and paper["mean OCT"] == "–"
    assert "width" not in table  # one width: no column


def test_cost_table_cells_and_the_papers_speedup_only():
    reported, _ = paper_frames()
    table = tables.cost_table(summary(), reported, REFERENCES)
    ours = table.iloc[0]
    assert ours["SOPs at T (M)"] == "2.000±0.000" and ours["energy w/ cutoff (µJ)"] == "1.500±0.000"
    assert ours["wall-clock speed-up"] == "1.50±0.00"
    paper = table.iloc[2]
    assert paper["speed-up (steps)"] == "≈2.00" and paper["SOPs at T (M)"] == "–"


def test_a_speed_up_not_measured_shows_a_dash():
    reported, _ = paper_frames()
    untimed = summary().assign(wallclock_speedup=float("nan"))  # a profile with timing_samples: 0
    assert tables.cost_table(untimed, reported, REFERENCES).iloc[0]["wall-clock speed-up"] == "–"


def test_the_tables_name_the_reset_gradient_and_the_width_where_it_varies():
    rows = [summary_row("TET", 0, 0.9, detach_reset=d, width=w) for d in (True, False) for w in (1.0, 2.0)]
    table = tables.accuracy_table(pd.DataFrame(rows))
    assert table[["reset gradient", "width"]].values.tolist() == [
        ["through reset", "1"],
        ["through reset", "2"],
        ["detached", "1"],
        ["detached", "2"],
    ]


def test_per_step_table_pivots_steps_into_columns():
    table = tables.per_step_table(per_step_frame())
    assert table.columns.tolist()[:4] == ["dataset", "method", "reset gradient", "t1"] and "t10" in table
    first = table.iloc[0]
    assert (first["dataset"], first["method"], first["t1"], first["t4"]) == (
        "digits",
        "TET",
        "65.00±7.07",
        "95.00±7.07",
    )
    assert first["t5"] == ""  # beyond digits' T
    assert table["method"].tolist() == ["TET", "STR(0.1)", "TET", "STR(0.5)"]


def test_curve_table_has_a_row_per_epsilon_and_a_column_per_method():
    table = tables.curve_table(curve_frame())
    assert table["ε"].tolist() == ["0", "0.01", "0.5"]  # written as everywhere else (0.0002, never 0.000200)
    assert table.columns.tolist()[1:] == ["digits TET", "digits STR(0.1)", "ndigits TET", "ndigits STR(0.5)"]
    assert table.loc[1, "digits TET"] == "90.00 at 2.00"  # mean of 0.85 and 0.95 at T/2


def validation_rows():
    """Per gradient, STR at 0.1 and 0.5; the test numbers favour 0.5, the validation numbers 0.1
    (on the detached gradient a tie on validation accuracy, broken by fewer exit steps: 0.5)."""
    rows = []
    for detach in (False, True):
        for alpha, val, steps in ((0.1, 0.95, 3.0), (0.5, 0.95 if detach else 0.90, 2.0)):
            for seed in (0, 1):
                values = {"alpha": alpha, "detach_reset": detach, "val_cutoff_accuracy": val}
                rows.append(
                    summary_row("STR(0.1)", seed, 0.99 if alpha == 0.5 else 0.80, val_mean_exit_step=steps, **values)
                )
        rows.append(summary_row("TET", 0, 1.0, detach_reset=detach, val_cutoff_accuracy=1.0, val_mean_exit_step=1.0))
    return pd.DataFrame(rows)


def test_selection_reads_only_validation_columns_and_breaks_ties_on_exit_steps():
    table = tables.selection_table(validation_rows())
    assert table[["reset gradient", "chosen"]].values.tolist() == [
        ["through reset", "STR(0.1)"],
        ["detached", "STR(0.5)"],
    ]
    first = table.iloc[0]
    assert first["val w/ cutoff (%)"] == "95.00±0.00" and first["test accuracy at T (%)"] == "80.00±0.00"
    assert first["seeds"] == "2"
    # TET of the same gradient beside it (one seed): validation 100% with cutoff, test 100% - 1 point at 2 steps
    assert (first["TET val w/ cutoff (%)"], first["TET test w/ cutoff (%)"]) == ("100.00±0.00", "99.00±0.00")
    assert first["TET test mean exit step"] == "2.00±0.00"


def test_selection_without_validation_data_says_so():
    with pytest.raises(ValueError, match="validation > 0"):
        tables.selection_table(summary())


def test_rows_with_a_run_of_other_code_are_marked_and_the_note_names_both_fingerprints():
    mixed = summary()
    mixed.loc[2, "code"] = "0123456789ab"  # TET seed 1: trained by other code
    assert tables.accuracy_table(mixed)["method"].tolist() == ["TET†", "STR(0.5)"]
    note = f"† made by other code (fingerprint 0123456789ab) than the current aoi ({code_fingerprint()}): "
    assert tables.code_note(mixed) == [note + "rerun ./reproduce.sh to make them again."]
    assert tables.table_notes(load_profile("default"), mixed)[-1] == tables.code_note(mixed)[0]
    assert tables.code_note(summary()) == []
    steps = per_step_frame()
    steps.loc[steps["dataset"] == "ndigits", "code"] = "none"  # both ndigits runs: no fingerprint recorded
    assert tables.per_step_table(steps)["method"].tolist() == ["TET", "STR(0.1)", "TET†", "STR(0.5)†"]
    curve = curve_frame()
    curve.loc[(curve["dataset"] == "digits") & (curve["method"] == "str"), "code"] = "none"
    assert tables.curve_table(curve).columns.tolist()[1:] == [
        "digits TET",
        "digits STR(0.1)†",
        "ndigits TET",
        "ndigits STR(0.5)",
    ]
    validation = validation_rows()
    validation.loc[validation.index[-1], "code"] = "none"  # the detached gradient's TET: its row is marked
    assert tables.selection_table(validation)["chosen"].tolist() == ["STR(0.1)", "STR(0.5)†"]


def test_html_table_is_deterministic_unwrapped_and_greys_the_papers_rows():
    reported, _ = paper_frames()
    table = tables.accuracy_table(summary(), reported, REFERENCES)
    first, second = (table_render.html_table(table, "Accuracy <at> ε", "accuracy") for _ in range(2))
    assert first == second
    assert "white-space: nowrap" in first and "Accuracy &lt;at&gt; ε" in first
    assert first.count("font-style: italic") >= 1 and "T_accuracy" in first
    assert first.count("<table") == 1 and "part 1" not in first


def test_numbers_have_one_format_and_no_negative_zero():
    assert tables.number(-0.004) == "0.00" and tables.number(-0.0000004, scale=100) == "0.00"
    assert tables.number(-0.006) == "-0.01" and tables.number(0.912345, 3, 100) == "91.234"
    assert tables._pm(-0.00004, 0.0022, 2, 100) == "0.00±0.22"  # the sweep's STR(0.005) drop, once "-0.00±0.22"


def test_a_table_wider_than_a_notebook_is_split_with_its_names_in_every_piece():
    # "dataset": 7 characters (its heading) -> 7 * 7.5 + 18 = 70.5 px; each step column 11 -> 100.5 px:
    # 9 step columns fit beside it in 1050 px, 12 do not: two pieces of 6
    wide = pd.DataFrame({"dataset": ["digits"], **{f"t{t}": ["97.11±0.44"] for t in range(1, 13)}})
    pieces = table_render.column_pieces(wide)
    assert pieces == [["dataset", *[f"t{t}" for t in range(1, 7)]], ["dataset", *[f"t{t}" for t in range(7, 13)]]]
    assert table_render.column_pieces(wide[["dataset", *[f"t{t}" for t in range(1, 10)]]]) == [
        ["dataset", *[f"t{t}" for t in range(1, 10)]]
    ]
    text = table_render.html_table(wide, "Per step", "steps")
    assert text.count("<table") == 2 and "Per step (part 1 of 2)" in text and "Per step (part 2 of 2)" in text
    assert "T_steps_1" in text and "T_steps_2" in text  # each piece its own deterministic ids


def test_markdown_table():
    text = table_render.markdown_table(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    assert text == "| a | b |\n|---|---|\n| 1 | x |\n| 2 | y |\n"


def test_table_notes_give_the_energy_formula_and_the_stand_ins():
    notes = tables.table_notes(load_profile("default"), summary())
    assert len(notes) == 3 and "ε = 0.01" in notes[0] and "E = 4.6 pJ × MACs + 0.9 pJ × SOPs" in notes[0]
    assert (
        "digits stands in for cifar10, cifar100, imagenet; ndigits stands in for cifar10dvs, ncaltech101, dvsgesture"
        in notes[2]
    )
    assert len(tables.table_notes(load_profile("paper"), summary())) == 2  # the paper's own datasets: no stand-ins


def test_write_table_writes_csv_and_markdown_with_title_and_notes(tmp_path):
    paths = table_render.write_table(pd.DataFrame({"a": [1]}), tmp_path / "t", "Title", ["note one"])
    assert [p.name for p in paths] == ["t.csv", "t.md"]
    assert paths[0].read_text() == "a\n1\n"
    assert paths[1].read_text() == "# Title\n\n- note one\n\n| a |\n|---|\n| 1 |\n"


def cross_validated() -> pd.DataFrame:
    """nmnist-small runs of a 2-fold cross-validation, seeds 0 and 1: TET at 0.80 everywhere; STR(0.5)
    at 0.82, 0.78 (seed 0, folds 0 and 1), 0.84, 0.80 (seed 1), 0.1 more SOPs with cutoff (M) and
    0.5 more exit steps; STR(0.1) chosen by fold 0's validation data, STR(0.5) by fold 1's."""
    rows = []
    for seed in (0, 1):
        for fold, (gain, val) in enumerate(((0.02, {0.1: 0.9, 0.5: 0.8}), (-0.02, {0.1: 0.8, 0.5: 0.9}))):
            folds = {"fold": fold, "folds": 2, "dataset": "nmnist-small", "T": 10}
            tet = {"cutoff_accuracy": 0.80, "val_cutoff_accuracy": 0.9, "val_mean_exit_step": 3.0}
            rows.append(summary_row("TET", seed, 0.80, **folds, **tet))
            for label, alpha, accuracy in (("STR(0.5)", 0.5, 0.80 + gain + 0.02 * seed), ("STR(0.1)", 0.1, 0.80)):
                more = {"sops_cutoff": 1.1e6, "mean_exit_step": 2.5} if alpha == 0.5 else {}
                values = {**folds, **more, "val_cutoff_accuracy": val[alpha], "val_mean_exit_step": 3.0}
                rows.append(summary_row(label, seed, accuracy, cutoff_accuracy=accuracy, **values))
    return pd.DataFrame(rows)


def test_paired_table_gives_the_mean_difference_and_its_paired_t_interval_per_variant():
    table = tables.paired_table(cross_validated())
    assert table.columns.tolist() == [
        *["dataset", "reset gradient", "STR − TET", "α chosen", "n"],
        *["Δ accuracy at T (pp)", "Δ w/ cutoff (pp)", "Δ mean exit step", "Δ SOPs w/ cutoff (M)"],
    ]
    assert table["STR − TET"].tolist() == ["STR(0.5)", "STR(0.1)", "STR(α chosen on validation)"]
    assert table["α chosen"].tolist() == ["–", "–", "0.1 ×1, 0.5 ×1"]
    assert table["n"].tolist() == ["4", "4", "4"]
    strong = table.iloc[0]
    # differences +2, -2, +4, 0 points: mean 1, sample std sqrt(20/3) = 2.582, t(3) 3.1824 x 2.582 / 2 = 4.109
    assert strong["Δ accuracy at T (pp)"] == "+1.00 [-3.11, +5.11]"
    assert strong["Δ mean exit step"] == "+0.50 [+0.50, +0.50]"
    assert strong["Δ SOPs w/ cutoff (M)"] == "+0.100 [+0.100, +0.100]"
    assert table.iloc[1]["Δ w/ cutoff (pp)"] == "+0.00 [+0.00, +0.00]"
    # chosen: STR(0.1) in fold 0 (0, 0 points), STR(0.5) in fold 1 (-2, 0): mean -0.5, std 1, half 3.1824 / 2
    assert table.iloc[2]["Δ accuracy at T (pp)"] == "-0.50 [-2.09, +1.09]"


def test_paired_table_without_validation_data_has_no_chosen_row_and_marks_other_code():
    runs = summary()
    runs.loc[0, "code"] = "0123456789ab"  # STR(0.5) seed 0 made by other code
    table = tables.paired_table(runs)
    assert table.columns.tolist()[:4] == ["dataset", "reset gradient", "STR − TET", "n"]
    assert table.values.tolist() == [
        ["digits", "through reset", "STR(0.5)†", "1", "-40.00 [–]", "-39.00 [–]", "+0.00 [–]", "+0.000 [–]"]
    ]


def test_paired_caption_names_the_method_and_the_units():
    folds = tables.paired_caption(cross_validated())
    assert "(seed, fold) of a 2-fold cross-validation" in folds and "95% paired t interval" in folds
    assert "over the n units of each row (column n)" in folds and "overlap" not in folds  # 2 folds: disjoint
    five = tables.paired_caption(cross_validated().assign(folds=5))
    assert "of a 5-fold cross-validation" in five and "share training data (k > 2 folds)" in five
    assert "trained on the same seed, at the stated ε = 0.01" in tables.paired_caption(summary())


def test_table_notes_say_how_folds_are_pooled(tmp_path):
    profile = load_profile("nmnist")
    note = tables.table_notes(profile, cross_validated())[-1]
    assert note.startswith("Cross-validated: nmnist-small in 5 stratified folds (train and test recordings pooled)")
    assert "every recording tested once per seed" in note
    assert not any("Cross-validated" in n for n in tables.table_notes(load_profile("default"), summary()))
