"""The paper's figure regenerated: six panels in the paper's order, its numbers and ours, stand-ins named."""

from types import SimpleNamespace

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from frames import curve_frame, paper_frames, per_step_frame

from aoi import paper_figure

REFERENCES = pd.DataFrame(
    {"dataset": ["digits", "ndigits", "ndigits"], "paper_dataset": ["cifar10", "cifar10dvs", "dvsgesture"]}
)


def figure():
    reported, per_step = paper_frames()
    return paper_figure.paper_figure(per_step_frame(), curve_frame(), 0.01, reported, per_step, REFERENCES)


def panel_axes(fig):
    """The six panels, in order (twin axes left out)."""
    return [ax for ax in fig.get_axes() if ax.get_title()]


def test_six_panels_in_the_papers_order_with_the_stand_ins_named():
    fig = figure()
    titles = [ax.get_title() for ax in panel_axes(fig)]
    assert [t.splitlines()[0] for t in titles] == [
        "(a) CIFAR-10, T=4",
        "(b) CIFAR-100, T=4",
        "(c) ImageNet, T=4",
        "(d) CIFAR10-DVS, T=10",
        "(e) N-Caltech101, T=10",
        "(f) DVS128 Gesture, T=16",
    ]
    assert titles[0].splitlines()[1] == "aoi's stand-in: digits, T=4 (right axis)"
    assert titles[1].splitlines()[1] == "no aoi run for it in this profile"
    assert "ndigits" in titles[5] and "ncaltech101" not in REFERENCES["paper_dataset"].tolist()
    assert "no aoi run" in titles[4]
    assert len(fig.get_axes()) == 6 + 3  # a right axis for each panel with a stand-in
    plt.close(fig)


def test_the_papers_lines_are_hollow_and_ours_carry_the_seed_means():
    fig = figure()
    cifar10 = panel_axes(fig)[0]
    paper_tet = cifar10.lines[0]
    assert paper_tet.get_linestyle() == "--" and paper_tet.get_markerfacecolor() == "white"
    assert list(paper_tet.get_ydata()) == [81.0, 82.0, 83.0, 84.0]
    digits = next(ax for ax in fig.get_axes() if ax.get_ylabel() == "digits accuracy [%] (aoi)")
    dashed = [line for line in digits.lines if line.get_linestyle() == "--"]
    assert list(dashed[0].get_ydata()) == pytest.approx([65, 75, 85, 95])  # TET: mean of seeds 0 and 1, in %
    solid = [line for line in digits.lines if line.get_linestyle() == "-"]
    assert list(solid[0].get_xdata()) == [1.0, 2.0, 4.0]  # the cutoff curve, by mean exit step
    labels = [t.get_text() for t in cifar10.get_legend().get_texts()]
    assert labels[0] == "paper TET: 90.00±0.50 / 89.00±0.50 at ≈2"
    assert labels[2] == "aoi digits: TET: 95.00±7.07 / 90.00±7.07 at 2.00"  # at T / at the stated epsilon
    plt.close(fig)


def test_the_own_dataset_shares_the_papers_axis():
    reported, per_step = paper_frames()
    ours = per_step_frame().replace({"dataset": {"digits": "cifar10"}})
    curve = curve_frame().replace({"dataset": {"digits": "cifar10"}})
    fig = paper_figure.paper_figure(ours, curve, 0.01, reported, per_step, pd.DataFrame(columns=REFERENCES.columns))
    assert panel_axes(fig)[0].get_title() == "(a) CIFAR-10, T=4"
    assert len(fig.get_axes()) == 6
    plt.close(fig)


def test_the_caption_links_the_paper_and_names_the_stand_ins():
    runs = [{"params": {"dataset": d}} for d in ("digits", "ndigits")]
    study = SimpleNamespace(name="default", epsilon=0.01, seeds=3, runs=runs, references=REFERENCES)
    text = paper_figure.caption(study)
    assert "[arXiv 2405.00699](https://arxiv.org/abs/2405.00699)" in text
    assert "profile `default`" in text and "mean over 3 seed(s)" in text and "ε = 0.01" in text
    assert "**Stand-ins**: digits, ndigits" in text
    assert "No aoi run for CIFAR-100, ImageNet, N-Caltech101 in this profile" in text
