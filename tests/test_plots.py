"""The figures from hand-made result frames: panels, lines, labels and marks, not pixels."""

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from frames import RUNS, ids, summary_row

from aoi.plots import (
    TOOLKIT_ALPHA,
    capacity_figure,
    exit_figure,
    mean_std,
    rules_figure,
    save_figure,
    stf_figure,
    sweep_figure,
)
from aoi.plots import with_variants as variants_of


def test_mean_std_uses_the_sample_std_and_zero_for_one_seed():
    frame = pd.DataFrame({"g": ["a", "a", "b"], "x": [1.0, 3.0, 5.0]})
    stats = mean_std(frame, ["g"], ["x"])
    assert stats["x_mean"].tolist() == [2.0, 5.0]
    assert stats["x_std"].tolist() == pytest.approx([2**0.5, 0.0])
    assert stats["seeds"].tolist() == [2, 1]


def test_variants_are_ordered_tet_first_then_decreasing_alpha_and_named_by_what_varies():
    frame = pd.DataFrame([ids("d", 4, label, 0) for label in ("STR(0.01)", "TET", "STR(0.5)", "STR(0.1)")])
    labelled, order = variants_of(frame)
    assert order == ["TET", "STR(0.5)", "STR(0.1)", "STR(0.01)"]
    assert labelled["variant"].tolist() == ["STR(0.01)", "TET", "STR(0.5)", "STR(0.1)"]
    both = pd.DataFrame([ids("d", 4, "TET", 0, detach_reset=d, width=w) for d in (True, False) for w in (2.0, 1.0)])
    assert variants_of(both)[1] == [
        "TET, through reset, width 1",
        "TET, through reset, width 2",
        "TET, detached, width 1",
        "TET, detached, width 2",
    ]
    assert variants_of(both, across=("width",))[1] == ["TET, through reset", "TET, detached"]


def test_rules_figure_draws_three_rules_and_the_oracle_per_method():
    rows = []
    for dataset, T, label, seed in RUNS:
        run = ids(dataset, T, label, seed)
        rows += [
            {**run, "rule": "confidence", "parameter": e, "accuracy": 0.9, "mean_exit_step": s}
            for e, s in ((0.0, T), (0.1, 1.5))
        ]
        rows += [{**run, "rule": "topk", "parameter": p, "accuracy": 0.8, "mean_exit_step": 2.0} for p in (0.9, 1.0)]
        rows += [
            {**run, "rule": "fixed", "parameter": float(t), "accuracy": 0.1 * t, "mean_exit_step": float(t)}
            for t in range(1, T + 1)
        ]
        rows.append({**run, "rule": "oct", "parameter": float("nan"), "accuracy": 0.9, "mean_exit_step": 1.2})
    fig = rules_figure(pd.DataFrame(rows))
    axes = fig.get_axes()
    assert len(axes) == 2
    assert [line.get_linestyle() for line in axes[1].lines] == ["-", "-.", ":", "None"] * 2
    oracle = axes[1].lines[3]
    assert list(oracle.get_xdata()) == [1.2] and list(oracle.get_ydata()) == pytest.approx([90.0])
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["TET", "STR(0.1)"]  # methods per panel
    assert [t.get_text() for t in fig.legends[0].get_texts()][-1] == "OCT (oracle)"  # rules once, below
    plt.close(fig)


def test_stf_figure_has_a_panel_per_method_plus_the_stf_panel():
    cs = pd.DataFrame(
        [
            {**ids(d, T, label, s), "layer": layer, "t": t, "cosine_similarity": 0.5}
            for d, T, label, s in RUNS
            for layer in (1, 2)
            for t in range(1, T + 1)
        ]
    )
    stf = pd.DataFrame(
        [{**ids(d, T, label, s), "layer": layer, "stf": 2.0} for d, T, label, s in RUNS for layer in (1, 2)]
    )
    fig = stf_figure(cs, stf)
    axes = fig.get_axes()
    assert len(axes) == 2 * 3  # 2 datasets x (TET, STR, STF)
    assert len(axes[0].lines) == 2  # one line per layer
    assert axes[0].get_title() == "digits: TET" and axes[2].get_title() == "digits: STF per layer"
    plt.close(fig)


def sweep_summary() -> pd.DataFrame:
    """digits: TET (2 seeds per gradient) and STR at 0.01 and 1 per gradient; accuracy 0.9 - alpha / 10."""
    rows = []
    for detach in (False, True):
        for seed in (0, 1):
            rows.append(summary_row("TET", seed, 0.9 + 0.02 * seed, detach_reset=detach))
            for alpha in (0.01, 1.0):
                row = summary_row("STR(0.1)", seed, 0.9 - alpha / 10, detach_reset=detach, alpha=alpha)
                rows.append({**row, "mean_exit_step": 3.0 - alpha})
    return pd.DataFrame(rows)


def test_sweep_figure_draws_alpha_on_a_log_axis_with_tet_and_the_marked_alphas():
    fig = sweep_figure(sweep_summary(), {"digits": [0.1]})
    axes = fig.get_axes()
    assert len(axes) == 3
    accuracy, cutoff, steps = axes
    assert accuracy.get_xscale() == "log" and "ε = 0.01" in cutoff.get_title()
    lines = {line.get_label(): line for line in accuracy.lines}
    through = lines["STR, through reset"]
    assert list(through.get_xdata()) == [0.01, 1.0]
    assert list(through.get_ydata()) == pytest.approx([89.9, 80.0])  # mean over seeds, in %
    tet = lines["TET (α = 0), through reset"]
    assert list(tet.get_ydata()) == pytest.approx([91.0, 91.0])  # mean of 0.90 and 0.92
    assert "STR, detached" in lines and "TET (α = 0), detached" in lines
    assert list(lines[f"toolkit default α = {TOOLKIT_ALPHA:g}"].get_xdata()) == [TOOLKIT_ALPHA] * 2
    assert list(lines["paper's α = 0.1"].get_xdata()) == [0.1, 0.1]
    assert list({line.get_label(): line for line in steps.lines}["STR, detached"].get_ydata()) == [2.99, 2.0]
    plt.close(fig)


def test_sweep_figure_of_tet_runs_alone_draws_tet_only():
    summary = sweep_summary()
    fig = sweep_figure(summary[summary["method"] == "tet"])
    labels = {line.get_label() for line in fig.get_axes()[0].lines}
    assert "TET (α = 0), through reset" in labels and not any(label.startswith("STR") for label in labels)
    plt.close(fig)


def test_capacity_figure_puts_one_line_per_method_across_widths():
    rows = [
        summary_row(label, seed, 0.8 + 0.05 * width, width=width)
        for label in ("TET", "STR(0.5)")
        for width in (1.0, 2.0, 4.0)
        for seed in (0, 1)
    ]
    fig = capacity_figure(pd.DataFrame(rows))
    accuracy = fig.get_axes()[0]
    labels = accuracy.get_legend_handles_labels()[1]
    assert labels == ["TET", "STR(0.5)"]
    line = accuracy.lines[0]
    assert list(line.get_xdata()) == [1.0, 2.0, 4.0] and list(line.get_ydata()) == pytest.approx([85.0, 90.0, 100.0])
    assert [tick.get_text() for tick in accuracy.get_xticklabels()] == ["1", "2", "4"]
    plt.close(fig)


def test_save_figure_writes_png_and_pdf(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    paths = save_figure(fig, tmp_path / "figure")
    plt.close(fig)
    assert [p.name for p in paths] == ["figure.png", "figure.pdf"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.pdf", "figure.png"]  # no temporaries left


def test_exit_figure_draws_a_bar_per_method_and_step_in_percent_with_the_mean_exit_step():
    rows = []
    for dataset, T, label, seed in RUNS:
        shares = [0.5, 0.5] + [0.0] * (T - 2) if seed == 0 else [0.25, 0.75] + [0.0] * (T - 2)
        rows += [{**ids(dataset, T, label, seed), "epsilon": 0.01, "t": t, "exits": s} for t, s in enumerate(shares, 1)]
    fig = exit_figure(pd.DataFrame(rows))
    digits, ndigits = fig.get_axes()
    assert digits.get_title() == "digits, cutoff at ε = 0.01" and len(ndigits.patches) == 2 * 10
    tet = digits.patches[:4]  # TET's bars at steps 1-4, shifted left of STR's
    assert [bar.get_height() for bar in tet] == pytest.approx([37.5, 62.5, 0.0, 0.0])  # means of the two seeds
    assert tet[0].get_x() + tet[0].get_width() == pytest.approx(1.0)
    # mean exit step 1 x 0.375 + 2 x 0.625 = 1.625, shown with 2 decimals (half to even)
    assert [t.get_text() for t in digits.get_legend().get_texts()] == ["TET: mean 1.62", "STR(0.1): mean 1.62"]
    plt.close(fig)
