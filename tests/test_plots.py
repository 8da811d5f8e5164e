"""The figures and tables from hand-made result frames: panels, lines and cells, not pixels."""

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from aoi.plots import (
    accuracy_figure,
    markdown_table,
    mean_std,
    per_step_table,
    rules_figure,
    save_figure,
    stf_figure,
    summary_table,
    table_notes,
    write_table,
)

RUNS = (
    [("digits", 4, "TET", seed) for seed in (0, 1)]
    + [("digits", 4, "STR(0.1)", seed) for seed in (0, 1)]
    + [("ndigits", 10, "TET", 0), ("ndigits", 10, "STR(0.5)", 0)]
)


def per_step_frame():
    """Accuracy 0.5 + 0.1 t for seed 0 and 0.1 more for seed 1 (digits); 0.05 t for ndigits."""
    rows = []
    for dataset, T, label, seed in RUNS:
        for t in range(1, T + 1):
            accuracy = 0.5 + 0.1 * t + 0.1 * seed if dataset == "digits" else 0.05 * t
            rows.append({"dataset": dataset, "label": label, "seed": seed, "t": t, "accuracy": accuracy})
    return pd.DataFrame(rows)


def curve_frame():
    rows = []
    for dataset, T, label, seed in RUNS:
        for epsilon, exit_step, accuracy in ((0.0, T, 0.9), (0.01, T / 2, 0.85 + 0.1 * seed), (0.5, 1.0, 0.6)):
            rows.append(
                {
                    "dataset": dataset,
                    "label": label,
                    "seed": seed,
                    "epsilon": epsilon,
                    "accuracy": accuracy,
                    "mean_exit_step": exit_step,
                }
            )
    return pd.DataFrame(rows)


def test_mean_std_uses_the_sample_std_and_zero_for_one_seed():
    frame = pd.DataFrame({"g": ["a", "a", "b"], "x": [1.0, 3.0, 5.0]})
    stats = mean_std(frame, ["g"], ["x"])
    assert stats["x_mean"].tolist() == [2.0, 5.0]
    assert stats["x_std"].tolist() == pytest.approx([2**0.5, 0.0])
    assert stats["seeds"].tolist() == [2, 1]


def test_accuracy_figure_has_a_panel_per_dataset_and_the_paper_lines():
    fig = accuracy_figure(per_step_frame(), curve_frame(), epsilon=0.01)
    axes = fig.get_axes()
    assert len(axes) == 2
    digits = axes[0]
    # per method: dashed fixed-step line, solid cutoff curve, the star at the stated epsilon
    assert [line.get_linestyle() for line in digits.lines] == ["--", "-", "None"] * 2
    tet_steps, tet_curve, tet_star = digits.lines[:3]
    assert list(tet_steps.get_xdata()) == [1, 2, 3, 4]
    assert list(tet_steps.get_ydata()) == pytest.approx([65, 75, 85, 95])  # mean of 0.6/0.7 ... in %
    assert list(tet_curve.get_xdata()) == [1.0, 2.0, 4.0]  # sorted by mean exit step
    assert list(tet_star.get_xdata()) == [2.0] and list(tet_star.get_ydata()) == pytest.approx([90.0])
    labels = digits.get_legend_handles_labels()[1]
    assert labels[0] == "TET (95.00±7.07)" and labels[1] == "TET, w/ cutoff (90.00±7.07)"
    assert labels[2].startswith("STR(0.1) (")
    assert len(digits.collections) == 4  # one std band per line
    plt.close(fig)


def test_accuracy_figure_overlays_the_paper_only_where_the_dataset_is_the_papers():
    reported = pd.DataFrame(
        [
            {
                "dataset": "digits",
                "T": 4,
                "method": m,
                "alpha": a,
                "cutoff": c,
                "accuracy_mean": 90.0,
                "accuracy_std": 0.1,
                "avg_timestep_approx": 2.0 if c == "yes" else 4,
            }
            for m, a in (("tet", None), ("str", 0.1))
            for c in ("no", "yes")
        ]
    )
    per_step = pd.DataFrame(
        [
            {"dataset": "digits", "method": m, "t": t, "accuracy_approx": 80.0 + t}
            for m in ("tet", "str")
            for t in range(1, 5)
        ]
    )
    fig = accuracy_figure(per_step_frame(), curve_frame(), 0.01, reported, per_step)
    digits, ndigits = fig.get_axes()
    assert len(digits.lines) == 6 + 4 and len(ndigits.lines) == 6
    assert "paper STR(0.1), w/ cutoff" in digits.get_legend_handles_labels()[1]
    plt.close(fig)


def test_rules_figure_draws_three_rules_and_the_oracle_per_method():
    rows = []
    for dataset, T, label, seed in RUNS:
        rows += [
            {"rule": "confidence", "parameter": e, "accuracy": 0.9, "mean_exit_step": s}
            for e, s in ((0.0, T), (0.1, 1.5))
        ]
        rows += [{"rule": "topk", "parameter": p, "accuracy": 0.8, "mean_exit_step": 2.0} for p in (0.9, 1.0)]
        rows += [
            {"rule": "fixed", "parameter": float(t), "accuracy": 0.1 * t, "mean_exit_step": float(t)}
            for t in range(1, T + 1)
        ]
        rows.append({"rule": "oct", "parameter": float("nan"), "accuracy": 0.9, "mean_exit_step": 1.2})
        for row in rows[-(5 + T) :]:
            row.update(dataset=dataset, label=label, seed=seed)
    fig = rules_figure(pd.DataFrame(rows))
    axes = fig.get_axes()
    assert len(axes) == 2
    assert [line.get_linestyle() for line in axes[1].lines] == ["-", "-.", ":", "None"] * 2
    oracle = axes[1].lines[3]
    assert list(oracle.get_xdata()) == [1.2] and list(oracle.get_ydata()) == pytest.approx([90.0])
    plt.close(fig)


def test_stf_figure_has_a_panel_per_method_plus_the_stf_panel():
    cs = pd.DataFrame(
        [
            {"dataset": d, "label": label, "seed": s, "layer": layer, "t": t, "cosine_similarity": 0.5}
            for d, T, label, s in RUNS
            for layer in (1, 2)
            for t in range(1, T + 1)
        ]
    )
    stf = pd.DataFrame(
        [
            {"dataset": d, "label": label, "seed": s, "layer": layer, "stf": 2.0}
            for d, T, label, s in RUNS
            for layer in (1, 2)
        ]
    )
    fig = stf_figure(cs, stf)
    axes = fig.get_axes()
    assert len(axes) == 2 * 3  # 2 datasets x (TET, STR, STF)
    assert len(axes[0].lines) == 2  # one line per layer
    assert axes[0].get_title() == "digits: TET" and axes[2].get_title() == "digits: STF per layer"
    plt.close(fig)


def test_save_figure_writes_png_and_pdf(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    paths = save_figure(fig, tmp_path / "figure")
    plt.close(fig)
    assert [p.name for p in paths] == ["figure.png", "figure.pdf"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.pdf", "figure.png"]  # no temporaries left


def summary_rows():
    base = {
        "dataset": "digits",
        "T": 4,
        "method": "tet",
        "alpha": None,
        "label": "TET",
        "epsilon": 0.01,
        "mean_exit_step": 2.0,
        "speedup": 2.0,
        "mean_oct": 1.5,
        "sops_full": 2e6,
        "sops_cutoff": 1e6,
        "energy_pj_full": 3e6,
        "energy_pj_cutoff": 1.5e6,
        "wallclock_speedup": 1.5,
    }
    str_run = {
        **base,
        "method": "str",
        "alpha": 0.5,
        "label": "STR(0.5)",
        "seed": 0,
        "accuracy": 0.5,
        "cutoff_accuracy": 0.5,
        "accuracy_drop": 0.0,
    }
    return pd.DataFrame(
        [
            str_run,
            {**base, "seed": 0, "accuracy": 0.90, "cutoff_accuracy": 0.89, "accuracy_drop": 0.01},
            {**base, "seed": 1, "accuracy": 0.92, "cutoff_accuracy": 0.90, "accuracy_drop": 0.02},
        ]
    )


def test_summary_table_cells_and_paper_reference_rows():
    reported = pd.DataFrame(
        [
            {
                "dataset": "cifar10",
                "T": 4,
                "method": "tet",
                "alpha": None,
                "cutoff": "no",
                "accuracy_mean": 95.40,
                "accuracy_std": 0.05,
                "avg_timestep_approx": 4.0,
            },
            {
                "dataset": "cifar10",
                "T": 4,
                "method": "tet",
                "alpha": None,
                "cutoff": "yes",
                "accuracy_mean": 95.30,
                "accuracy_std": 0.05,
                "avg_timestep_approx": 1.6,
            },
            {
                "dataset": "cifar10",
                "T": 4,
                "method": "str",
                "alpha": 0.1,
                "cutoff": "no",
                "accuracy_mean": 95.42,
                "accuracy_std": 0.04,
                "avg_timestep_approx": 4.0,
            },
            {
                "dataset": "cifar10",
                "T": 4,
                "method": "str",
                "alpha": 0.1,
                "cutoff": "yes",
                "accuracy_mean": 95.42,
                "accuracy_std": 0.05,
                "avg_timestep_approx": 1.67,
            },
        ]
    )
    references = pd.DataFrame({"dataset": ["digits"], "paper_dataset": ["cifar10"]})
    table = summary_table(summary_rows(), reported, references)
    assert table["source"].tolist() == ["ours (T=4)"] * 2 + ["paper (T=4)"] * 2
    assert table["method"].tolist() == ["TET", "STR(0.5)", "TET", "STR(0.1)"]  # TET first
    ours = table.iloc[0]
    assert ours["accuracy (%)"] == "91.00±1.41"  # mean 0.91, sample std 0.01414 of 0.90/0.92
    assert ours["w/ cutoff (%)"] == "89.50±0.71"
    assert ours["accuracy drop (pp)"] == "1.50±0.71"
    assert ours["SOPs full (M)"] == "2.000±0.000" and ours["energy w/ cutoff (µJ)"] == "1.500±0.000"
    assert ours["seeds"] == "2"
    tet = table.iloc[2]
    assert tet["method"] == "TET" and tet["accuracy drop (pp)"] == "0.10" and tet["speed-up (steps)"] == "≈2.50"
    assert tet["mean OCT"] == "–"
    assert table.iloc[1]["seeds"] == "1" and table.iloc[1]["accuracy (%)"] == "50.00±0.00"


def test_per_step_table_pivots_steps_into_columns():
    table = per_step_table(per_step_frame())
    assert table.columns.tolist()[:3] == ["dataset", "method", "t1"] and "t10" in table.columns
    first = table.iloc[0]
    assert (first["dataset"], first["method"], first["t1"], first["t4"]) == (
        "digits",
        "TET",
        "65.00±7.07",
        "95.00±7.07",
    )
    assert first["t5"] == ""  # beyond digits' T
    assert table["method"].tolist() == ["TET", "STR(0.1)", "TET", "STR(0.5)"]


def test_markdown_table():
    text = markdown_table(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    assert text == "| a | b |\n|---|---|\n| 1 | x |\n| 2 | y |\n"


def test_table_notes_say_when_datasets_stand_in_for_the_papers():
    from aoi.profiles import load_profile

    notes = table_notes(load_profile("default"))
    assert len(notes) == 3 and "ε = 0.01" in notes[0]
    assert "digits stands in for cifar10; ndigits stands in for cifar10dvs, ncaltech101, dvsgesture" in notes[2]
    assert len(table_notes(load_profile("paper"))) == 2  # the paper's own datasets: no stand-ins


def test_write_table_writes_csv_and_markdown_with_title_and_notes(tmp_path):
    paths = write_table(pd.DataFrame({"a": [1]}), tmp_path / "t", "Title", ["note one"])
    assert [p.name for p in paths] == ["t.csv", "t.md"]
    assert paths[0].read_text() == "a\n1\n"
    assert paths[1].read_text() == "# Title\n\n- note one\n\n| a |\n|---|\n| 1 |\n"
