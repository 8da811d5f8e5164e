"""The paper's figure and aoi's beside it: the paper's six panels with its numbers, a panel per aoi
dataset read from each profile's results, the cutoff of both on a common scale, one key."""

import json

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from frames import curve_frame, ids, paper_frames, per_step_frame

from aoi import paper_figure
from aoi.files import sealed_metrics
from aoi.layout import run_name
from aoi.plots import method_color
from aoi.profiles import load_profile, run_grid
from aoi.results import load_study

FRAME_ONLY = pd.DataFrame({"dataset": ["digits"], "paper_dataset": ["cifar10"]})


def dataset(name: str, kind: str, epsilon: float = 0.01) -> paper_figure.AoiDataset:
    """An aoi dataset of the hand-made frames (`frames.py`): digits (TET, STR(0.1), seeds 0 and 1) or ndigits."""
    per_step, curve = per_step_frame(), curve_frame()
    summary = pd.DataFrame(
        [
            {**ids(name, 4, label, seed), "accuracy_drop": 0.01 * (seed + 1), "speedup": 2.0 + seed}
            for label in ("TET", "STR(0.1)")
            for seed in (0, 1)
        ]
    )
    pick = lambda frame: frame[frame["dataset"] == name]  # noqa: E731
    return paper_figure.AoiDataset(name, kind, "default", epsilon, pick(per_step), pick(curve), summary)


def drawn(ax) -> list:
    """The lines of ``ax`` that show data (seaborn also keeps empty ones for its legend)."""
    return [line for line in ax.lines if len(line.get_xdata())]


def figure(ours=None):
    reported, per_step = paper_frames()
    ours = [dataset("digits", "frame"), dataset("ndigits", "event")] if ours is None else ours
    return paper_figure.paper_figure(reported, per_step, ours)


def titled(fig) -> dict:
    return {ax.get_title(): ax for ax in fig.get_axes() if ax.get_title()}


def test_the_papers_six_panels_in_its_order_with_its_numbers_hollow():
    fig = figure()
    titles = list(titled(fig))
    assert titles[:6] == [
        "(a) CIFAR-10, T=4",
        "(b) CIFAR-100, T=4",
        "(c) ImageNet, T=4",
        "(d) CIFAR10-DVS, T=10",
        "(e) N-Caltech101, T=10",
        "(f) DVS128 Gesture, T=16",
    ]
    cifar10 = titled(fig)["(a) CIFAR-10, T=4"]
    tet, str_ = (line for line in drawn(cifar10) if line.get_linestyle() == "--")
    assert tet.get_linestyle() == "--" and tet.get_markerfacecolor() == "white" and tet.get_marker() == "o"
    assert list(tet.get_ydata()) == [81.0, 82.0, 83.0, 84.0]  # its accuracy per step, as digitised
    assert tet.get_color() == method_color("tet") and str_.get_color() == method_color("str", 0.1)
    star = next(line for line in drawn(cifar10) if line.get_marker() == "*")
    assert (list(star.get_xdata()), list(star.get_ydata())) == ([2.0], [89.0])  # with cutoff at T/2
    assert star.get_markerfacecolor() == "white"
    assert cifar10.get_ylim() == paper_figure.PAPER_YLIM["cifar10"]
    assert [t.get_text() for t in cifar10.get_legend().get_texts()] == ["TET", "STR(0.1)"]  # what is drawn, only
    plt.close(fig)


def test_a_panel_per_aoi_dataset_with_seed_means_bands_and_the_stated_epsilon():
    fig = figure()
    digits = titled(fig)["digits, T=4 (frame data, like (a)–(c))"]
    assert "ndigits, T=10 (event data, like (d)–(f))" in titled(fig)
    dashed = [line for line in drawn(digits) if line.get_linestyle() == "--"]
    assert list(dashed[0].get_ydata()) == pytest.approx([65, 75, 85, 95])  # TET: mean of seeds 0 and 1, in %
    assert dashed[0].get_markerfacecolor() == dashed[0].get_color()  # filled: aoi
    vertices = digits.collections[0].get_paths()[0].vertices  # TET's band at t = 1: ± the sample std, 7.07
    at_one = vertices[vertices[:, 0] == 1.0, 1]
    assert (at_one.min(), at_one.max()) == pytest.approx((65 - 50**0.5, 65 + 50**0.5))
    solid = [line for line in drawn(digits) if line.get_linestyle() == "-"]
    assert list(solid[0].get_xdata()) == [1.0, 2.0, 4.0]  # the cutoff curve, by mean exit step
    star = next(line for line in drawn(digits) if line.get_marker() == "*")
    assert (list(star.get_xdata()), list(star.get_ydata())) == ([2.0], [pytest.approx(90.0)])  # at ε = 0.01
    assert star.get_markeredgecolor() == "black" and star.get_markerfacecolor() == method_color("tet")
    assert [t.get_text() for t in digits.get_legend().get_texts()] == ["TET", "STR(0.1)"]
    plt.close(fig)


def test_without_aoi_results_the_papers_panels_and_its_cutoff_alone():
    fig = figure([])
    assert len([title for title in titled(fig) if title.startswith("(")]) == 6
    headings = [text.get_text() for text in fig.texts]
    assert len(headings) == 2 and not any("aoi" in heading for heading in headings)  # the paper's, the common scale's
    assert all(text.get_text().startswith("paper") for text in fig.legends[0].get_texts())  # nothing not drawn
    plt.close(fig)


def test_the_key_shows_each_mark_as_it_is_drawn():
    fig = figure()
    (key,) = fig.legends
    labels = [t.get_text() for t in key.get_texts()]
    assert labels[0].startswith("paper: accuracy at step t") and labels[3].startswith("aoi: with cutoff")
    handles = dict(zip(labels, key.legend_handles))
    paper_star = handles["paper: with cutoff, at its mean exit step (± its std)"]
    assert paper_star.get_marker() == "*" and paper_star.get_markerfacecolor() == "white"
    aoi_star = handles["aoi: with cutoff at the stated ε (± std over seeds)"]
    assert aoi_star.get_marker() == "*" and aoi_star.get_markeredgecolor() == "black"
    plt.close(fig)


def test_the_common_scale_is_speed_up_and_accuracy_drop_per_dataset():
    reported, _ = paper_frames()
    points = paper_figure.tradeoff_frame(reported, [dataset("digits", "frame")])
    paper = points[points["source"] == "paper"]
    assert len(paper) == 12 and set(paper["speedup"]) == {2.0} and set(paper["drop"]) == {1.0}  # T / (T/2); 90 - 89
    ours = points[points["source"] == "aoi"].iloc[0]
    assert (ours["dataset"], ours["label"], ours["kind"]) == ("digits", "TET", "frame")
    assert (ours["speedup"], ours["drop"]) == pytest.approx((2.5, 1.5))  # means of 2, 3 and of 1, 2 points
    assert (ours["speedup_std"], ours["drop_std"]) == pytest.approx((0.5**0.5, 0.5**0.5))
    frame_rows = points.loc[points["kind"] == "frame", "dataset"].drop_duplicates().tolist()
    assert frame_rows == ["CIFAR-10", "CIFAR-100", "ImageNet", "digits"]  # the paper's rows, then aoi's
    fig = figure([dataset("digits", "frame")])
    speed = next(ax for ax in fig.get_axes() if ax.get_xlabel().startswith("Speed-up in steps"))
    assert [t.get_text() for t in speed.get_yticklabels()][3:5] == ["digits (aoi, frame)", "CIFAR10-DVS (paper, event)"]
    plt.close(fig)


def write_runs(folder, name: str, T: int, seeds=(0, 1)) -> None:
    """metrics.json files of the TET runs of dataset ``name`` that the profile of ``folder`` (its
    name) defines, with what the figure reads."""
    grid = run_grid(load_profile(folder.name))
    for params in [p for p in grid if p["dataset"] == name and p["method"] == "tet" and p["seed"] in seeds]:
        assert params["T"] == T
        curve = [{"epsilon": e, "accuracy": 0.9, "mean_exit_step": s} for e, s in ((0.0, T), (0.01, T / 2))]
        run = {
            "run_name": run_name(params),
            "params": params,
            "T": T,
            "epsilon": 0.01,
            "accuracy": 0.9,
            "accuracy_per_step": [{"t": t, "accuracy": 0.5 + 0.4 * t / T} for t in range(1, T + 1)],
            "curve": curve,
            "cutoff": {"accuracy": 0.9, "mean_exit_step": T / 2, "speedup": 2.0, "accuracy_drop": 0.0},
            "oct": {"mean": 1.0},
            "operations": {"sops_full": 1, "sops_cutoff": 1, "energy_pj_full": 1, "energy_pj_cutoff": 1},
        }
        path = folder / "runs" / run["run_name"] / "metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(sealed_metrics(run)))


def test_aoi_datasets_come_from_each_profiles_results_once_and_absent_ones_are_left_out(tmp_path):
    results = tmp_path / "results"
    write_runs(results / "default", "ndigits", 10)
    write_runs(results / "default", "digits", 4)
    write_runs(results / "fashion", "fashion-mnist", 4)
    ours = paper_figure.aoi_datasets(load_study("default", results / "default"))  # no results/nmnist: left out
    assert [(d.name, d.kind, d.profile) for d in ours] == [
        ("digits", "frame", "default"),
        ("fashion-mnist", "frame", "fashion"),
        ("ndigits", "event", "default"),
    ]
    assert set(ours[0].per_step["seed"]) == {0, 1}
    text = paper_figure.caption(ours)
    assert "[arXiv 2405.00699](https://arxiv.org/abs/2405.00699)" in text
    assert "digits (`default`), fashion-mnist (`fashion`), ndigits (`default`)" in text and "2 seeds" in text


def test_a_profile_whose_results_cannot_be_read_is_left_out_with_the_reason(tmp_path, capsys):
    results = tmp_path / "results"
    write_runs(results / "default", "digits", 4)
    write_runs(results / "fashion", "fashion-mnist", 4)
    edited = next((results / "fashion" / "runs").rglob("metrics.json"))
    run = json.loads(edited.read_text())
    run["accuracy_cutoff"] = 99.9  # a number changed by hand: its digest no longer matches
    edited.write_text(json.dumps(run))
    ours = paper_figure.aoi_datasets(load_study("default", results / "default"))
    assert [d.name for d in ours] == ["digits"]
    printed = capsys.readouterr().out
    assert printed.startswith("profile 'fashion' left out of the figure: ") and str(edited) in printed


def test_a_dataset_with_runs_of_other_code_is_marked_and_the_caption_names_the_code():
    old = dataset("digits", "frame")
    old.summary = old.summary.assign(code="0123456789ab")
    fig = figure([old])
    assert "digits†, T=4 (frame data, like (a)–(c))" in titled(fig)
    plt.close(fig)
    assert "† Runs made by other code (fingerprint 0123456789ab) than the current aoi" in paper_figure.caption([old])
    assert "†" not in paper_figure.caption([dataset("digits", "frame")])
    steps = paper_figure.drawn([dataset("digits", "frame"), dataset("ndigits", "event")], "per_step")
    assert sorted(set(steps["dataset"])) == ["digits", "ndigits"]  # the numbers drawn, in one frame
