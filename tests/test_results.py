"""aoi.results: every run's metrics.json as tidy frames, the paper's numbers."""

import json

import pytest

from aoi import layout, results
from aoi.files import UnreadableFile, sealed_metrics
from aoi.profiles import load_profile, run_grid, run_params
from aoi.provenance import code_fingerprint

# the parts of a metrics.json that the frames read (the hand-checked run of test_analysis.py)
METRICS = """{"params": {"dataset": "digits", "method": "str", "alpha": 0.1, "seed": 1}, "T": 3, "epsilon": 0.01,
"run_name": "digits/T3-str-a0.1-s1", "accuracy": 0.6667,
"accuracy_per_step": [{"t": 1, "accuracy": 0.3333}, {"t": 2, "accuracy": 0.6667}, {"t": 3, "accuracy": 0.6667}],
"cutoff": {"accuracy": 0.6667, "mean_exit_step": 2.0, "speedup": 1.5, "accuracy_drop": 0.0},
"oct": {"mean": 2.0}, "timing": null, "test_samples": 3,
"operations": {"sops_full": 36, "sops_cutoff": 24, "energy_pj_full": 32.4, "energy_pj_cutoff": 21.6}}"""


PROFILE = """name: tiny
epsilon: 0.01
epsilons: [0.0, 0.01]
seeds: [0, 1]
datasets:
  digits:
    model: digits_snn
    T: 3
    epochs: 1
    batch_size: 2
    lr: 0.1
    methods:
      - {method: str, alpha: 0.1}
"""


def write_run(root, params: dict, provenance=None):
    """A metrics.json of the hand-checked run under ``root`` (results/<profile>), with ``params``."""
    run = {**json.loads(METRICS), "params": params, "run_name": layout.run_name(params), "provenance": provenance}
    path = root / "runs" / run["run_name"] / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(sealed_metrics(run), default=str))


def test_loading_gives_tidy_frames(tmp_path):
    (tmp_path / "tiny.yaml").write_text(PROFILE)
    profile = load_profile(str(tmp_path / "tiny.yaml"))
    root = tmp_path / "results" / "tiny"
    current = {"train": {"code_fingerprint": code_fingerprint()}, "analysis": {"code_fingerprint": code_fingerprint()}}
    for seed, provenance in ((0, current), (1, None)):  # seed 1 made by code that recorded no fingerprint
        write_run(root, run_params(profile, "digits", "str", 0.1, seed), provenance)
    runs, left_out = results.load_runs(root, profile)
    assert [run["params"]["seed"] for run in runs] == [0, 1] and left_out == []
    steps = results.records_frame(runs, "accuracy_per_step")
    assert steps.columns.tolist() == [
        *["dataset", "T", "method", "alpha", "label", "detach_reset", "width", "seed", "folds", "fold"],
        *["test_samples", "code", "t", "accuracy"],
    ]
    assert steps.drop_duplicates("seed")["code"].tolist() == [code_fingerprint(), "none"]
    assert len(steps) == 6 and set(steps["label"]) == {"STR(0.1)"}
    summary = results.summary_frame(runs)
    assert summary["mean_exit_step"].tolist() == pytest.approx([2.0, 2.0])
    assert summary["energy_pj_cutoff"].tolist() == pytest.approx([21.6, 21.6])
    study = results.load_study(str(tmp_path / "tiny.yaml"), root)
    assert study.name == "tiny" and study.profile["name"] == "tiny" and study.seeds == 2
    first, warning = study.describe().splitlines()
    assert first.startswith("2 runs of profile 'tiny' in ") and first.endswith("epsilon 0.01")
    assert warning == (
        f"WARNING: runs made by other code (fingerprint none) than the current aoi ({code_fingerprint()}), "
        "marked † in the tables: digits/T3-str-a0.1-s1; rerun ./reproduce.sh --profile tiny"
    )
    assert study.other_code == {"none": ["digits/T3-str-a0.1-s1"]}
    with pytest.raises(FileNotFoundError, match="reproduce.sh --profile nothing"):
        results.load_study("nothing", tmp_path / "nothing")
    empty = results.load_study("not-yet-written", tmp_path / "nothing", required=False)
    assert empty.runs == [] and empty.profile is None and "--profile not-yet-written" in empty.describe()


def test_a_study_is_the_runs_its_profile_defines_now(tmp_path):
    """Runs of an alpha taken out of the profile, or analysed with an lr since changed, are left out
    and named; a run without results is named too."""
    (tmp_path / "tiny.yaml").write_text(PROFILE)
    profile = load_profile(str(tmp_path / "tiny.yaml"))
    root = tmp_path / "results" / "tiny"
    write_run(root, run_params(profile, "digits", "str", 0.1, 0))
    write_run(root, run_params(profile, "digits", "str", 0.1, 1, lr=0.2))  # lr 0.2 then, 0.1 now
    write_run(root, run_params(profile, "digits", "str", 0.5, 0))  # alpha 0.5 no longer in the profile
    study = results.load_study(str(tmp_path / "tiny.yaml"), root)
    assert [run["run_name"] for run in study.runs] == ["digits/T3-str-a0.1-s0"]
    assert study.left_out == ["digits/T3-str-a0.1-s1 (analysed with other parameters)", "digits/T3-str-a0.5-s0"]
    assert len(study.summary) == 1 and study.seeds == 1
    assert study.describe().splitlines()[1:3] == [
        "without results yet (not shown): digits/T3-str-a0.1-s1",
        "left out, not runs of the profile as it is now: digits/T3-str-a0.1-s1 (analysed with other parameters), "
        "digits/T3-str-a0.5-s0; ./reproduce.sh --profile tiny removes them",
    ]


def test_a_study_whose_results_cannot_be_read_shows_none_and_says_why(tmp_path):
    """A metrics.json without its digest (an older aoi's): a required study is refused naming the
    file; a study that is not required comes back empty with that reason as its description."""
    (tmp_path / "tiny.yaml").write_text(PROFILE)
    profile = load_profile(str(tmp_path / "tiny.yaml"))
    root = tmp_path / "results" / "tiny"
    write_run(root, run_params(profile, "digits", "str", 0.1, 0))
    older = root / "runs" / "digits" / "T3-str-a0.1-s0" / "metrics.json"
    run = json.loads(older.read_text())
    del run["provenance"]["metrics_sha256"]
    older.write_text(json.dumps({**run, "profile": "tiny"}))
    with pytest.raises(UnreadableFile, match="records no digest of its content"):
        results.load_study(str(tmp_path / "tiny.yaml"), root)
    study = results.load_study(str(tmp_path / "tiny.yaml"), root, required=False)
    assert study.runs == [] and study.profile is None
    assert study.describe() == (
        f"results of profile 'tiny' cannot be read, so none is shown: {older} records no digest of its content "
        "(an older aoi or a hand wrote it), so its provenance cannot vouch for its numbers: restore the file aoi "
        f"wrote (git checkout -- {older}) or compute the run again "
        "(./reproduce.sh --profile tiny --only 'digits/T3-str-a0.1-s0' --force)"
    )


def test_the_papers_numbers_are_shipped():
    reported, per_step = results.load_paper()
    assert len(reported) == 24 and set(reported["dataset"]) == {
        "cifar10",
        "cifar100",
        "imagenet",
        "cifar10dvs",
        "ncaltech101",
        "dvsgesture",
    }
    row = reported[
        (reported["dataset"] == "cifar10dvs") & (reported["method"] == "str") & (reported["cutoff"] == "yes")
    ].iloc[0]
    assert (row.accuracy_mean, row.accuracy_std) == (82.08, 0.48)
    assert len(per_step) == 2 * (3 * 4 + 2 * 10 + 16)


def test_profile_datasets_frame_lists_the_paper_references():
    frame = results.profile_datasets_frame(load_profile("default"))
    assert frame.values.tolist() == [
        ["digits", "cifar10"],
        ["digits", "cifar100"],
        ["digits", "imagenet"],
        ["ndigits", "cifar10dvs"],
        ["ndigits", "ncaltech101"],
        ["ndigits", "dvsgesture"],
    ]


def test_paper_alphas_are_the_legends_alphas_of_the_data_each_dataset_stands_for():
    reported, _ = results.load_paper()
    references = results.profile_datasets_frame(
        {"datasets": {"digits": {"paper": ["cifar10", "cifar100"]}, "ndigits": {"paper": ["cifar10dvs"]}}}
    )
    assert results.paper_alphas(reported, references) == {"digits": [0.05, 0.1], "ndigits": [0.5]}


def fold_run(seed: int, fold: int, correct: int, tested: int, exits: list[int], code=None) -> dict:
    """A run of fold ``fold`` of a 2-fold cross-validation (T=3): ``correct`` of ``tested`` right at
    T and with cutoff, ``exits`` test samples exiting at steps 1, 2, 3."""
    run = json.loads(METRICS)
    mean_exit = sum(t * n for t, n in enumerate(exits, 1)) / tested
    run["params"].update(seed=seed, fold=fold, folds=2)
    run.update(accuracy=correct / tested, test_samples=tested, run_name=f"digits/T3-str-a0.1-f{fold}of2-s{seed}")
    run["cutoff"] = {"accuracy": correct / tested, "mean_exit_step": mean_exit, "speedup": 3 / mean_exit}
    run["cutoff"].update(accuracy_drop=0.0, exit_histogram=exits)
    run["oct"] = {"mean": 1.0, "histogram": [tested, 0, 0]}
    fingerprint = code or code_fingerprint()
    run["provenance"] = {"train": {"code_fingerprint": fingerprint}, "analysis": {"code_fingerprint": fingerprint}}
    return run


def test_folds_are_pooled_per_seed_weighted_by_their_test_samples():
    runs = [
        fold_run(0, 0, correct=2, tested=3, exits=[1, 1, 1]),  # mean exit 2
        fold_run(0, 1, correct=0, tested=1, exits=[0, 0, 1], code="0123456789ab"),  # mean exit 3
        fold_run(1, 0, correct=3, tested=3, exits=[3, 0, 0]),  # seed 1: fold 1 missing
    ]
    by_fold = results.summary_frame(runs)
    assert by_fold[["seed", "fold", "folds", "test_samples"]].values.tolist() == [
        [0, 0, 2, 3],
        [0, 1, 2, 1],
        [1, 0, 2, 3],
    ]
    pooled = results.pool_folds(by_fold)
    assert pooled[["seed", "fold", "test_samples"]].values.tolist() == [[0, 2, 4], [1, 1, 3]]
    first = pooled.iloc[0]
    assert first["accuracy"] == pytest.approx(2 / 4)  # every recording once: 2 of 4 right
    assert first["mean_exit_step"] == pytest.approx((1 + 2 + 3 + 3) / 4)
    assert first["speedup"] == pytest.approx(3 / 2.25)  # T over the pooled mean exit step
    assert first["energy_pj_cutoff"] == pytest.approx(21.6) and first["code"] == "0123456789ab"
    exits = results.pool_folds(results.exit_frame(runs))
    assert exits[exits["seed"] == 0]["exits"].tolist() == pytest.approx([1 / 4, 1 / 4, 2 / 4])
    assert exits[exits["seed"] == 0]["oct"].tolist() == pytest.approx([1.0, 0.0, 0.0])
    plain = results.summary_frame([json.loads(METRICS)])
    assert results.pool_folds(plain).equals(plain)  # no folds: as it is


def test_a_study_with_missing_folds_says_which(tmp_path):
    (tmp_path / "tiny.yaml").write_text(PROFILE.replace("    lr: 0.1\n", "    lr: 0.1\n    folds: 2\n"))
    grid = {(p["seed"], p["fold"]): p for p in run_grid(load_profile(str(tmp_path / "tiny.yaml")))}
    for run in (fold_run(0, 0, 2, 3, [1, 1, 1]), fold_run(0, 1, 1, 1, [0, 1, 0]), fold_run(1, 0, 3, 3, [3, 0, 0])):
        run["params"] = grid[run["params"]["seed"], run["params"]["fold"]]  # as the profile defines it
        path = tmp_path / "runs" / run["run_name"] / "metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(sealed_metrics(run)))
    study = results.load_study(str(tmp_path / "tiny.yaml"), tmp_path)
    assert len(study.by_fold) == 3 and len(study.summary) == 2 and study.seeds == 2
    assert study.summary["accuracy"].tolist() == pytest.approx([3 / 4, 1.0])
    assert study.describe().splitlines()[1:] == [
        "without results yet (not shown): digits/T3-str-a0.1-f1of2-s1",
        "WARNING: folds missing, pooled over fewer: digits STR(0.1) seed 1 (1 of 2 folds); "
        "run ./reproduce.sh --profile tiny",
    ]


def training_record(cpu: str = "AMD EPYC", threads: int = 1, cache_dir: str = "/a/data/x") -> dict:
    """A training provenance record as train.py writes it, with one data split and two packages."""
    return {
        "code_fingerprint": "0123456789ab",
        "machine": {"cpu": cpu, "torch_threads": threads, "platform": "Linux"},
        "data": {"train": {"dataset": "ndigits", "num_samples": 1347, "cache_dir": cache_dir, "files": [cache_dir]}},
        "versions": {"torch": "2.14.1", "numpy": "2.4.6"},
    }


def test_training_conditions_are_cpu_threads_code_data_and_versions_without_file_locations():
    assert results.training_conditions(training_record()) == {
        "CPU model": "AMD EPYC",
        "torch threads": 1,
        "code": "0123456789ab",
        "data train dataset": "ndigits",
        "data train num_samples": 1347,
        "torch version": "2.14.1",
        "numpy version": "2.4.6",
    }
    assert results.training_conditions(None)["CPU model"] is None  # an old run that recorded nothing


def test_condition_differences_name_both_sides_and_ignore_where_the_data_lie():
    moved = training_record(cache_dir="/elsewhere/data/x")  # the same data in another folder
    assert results.condition_differences(training_record(), moved) == []
    other = training_record(cpu="Intel Xeon", threads=2)
    other["data"]["train"]["num_samples"] = 1000
    assert results.condition_differences(training_record(), other) == [
        ("CPU model", "AMD EPYC", "Intel Xeon"),
        ("torch threads", 1, 2),
        ("data train num_samples", 1347, 1000),
    ]
    assert results.condition_differences(training_record(), None)[0] == ("CPU model", "AMD EPYC", None)
