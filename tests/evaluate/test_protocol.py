import csv
import json
import math
import zlib
from collections import Counter

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from brainuad.cli.evaluate import evaluate, split_list
from brainuad.data.cache import GridCache
from brainuad.data.grid import MODEL_GRID_SHAPE
from brainuad.data.layout import split_subjects
from brainuad.errors import InputError
from brainuad.evaluate import engine, run_thresholds
from brainuad.evaluate.outputs import write_evaluation
from brainuad.evaluate.postprocess import PostProcessing
from brainuad.evaluate.protocol import evaluate_method
from brainuad.evaluate.results import EvaluationSummary
from brainuad.evaluate.rules import postprocessing_variants, threshold_rules
from brainuad.evaluate.runs import evaluate_runs, summarise
from brainuad.evaluate.tables import build_tables
from brainuad.methods.registry import build_detector, load_config
from brainuad.run_directory import write_config
from brainuad.weights import save_weights

LESION_STRENGTH = 0.3


def planted_anomaly(volume, noise):
    """What the test doubles find: LESION_STRENGTH on lesion voxels plus uniform noise, seeded by name."""
    rng = np.random.default_rng(zlib.crc32(volume.name.encode()))
    lesion = volume.seg if volume.seg is not None else np.zeros(volume.image.shape, dtype=bool)
    return (LESION_STRENGTH * lesion + noise * rng.random(volume.image.shape)).astype(np.float32)


class PlantedReconstruction:
    """A reconstruction method whose residual is the planted anomaly; records every call."""

    def __init__(self, noise=0.2):
        self.noise = noise
        self.calls = []

    def reconstruct(self, volume):
        self.calls.append(volume.name)
        return volume.image - planted_anomaly(volume, self.noise)

    def anomaly_map(self, volume):
        return np.abs(volume.image - self.reconstruct(volume))


class PlantedMap:
    """A method with an anomaly map only (no reconstruction)."""

    def anomaly_map(self, volume):
        return planted_anomaly(volume, 0.2)


class PlantedDiffusion(PlantedReconstruction):
    """A 'diffusion method': the noise grows with t_test; its own level is 500."""

    def levels(self, t_test=None):
        if t_test is not None and not 1 <= t_test <= 1000:
            raise ValueError(f"t_test {t_test} outside 1..1000")
        return (t_test or 500,)

    def reconstruct(self, volume, *, t_test=None):
        self.calls.append((volume.name, t_test))
        return volume.image - planted_anomaly(volume, 0.2 * (t_test or 500) / 500)


def quick(method, cohort, cache, **options):
    settings = dict(name="planted", modality="t2", sets=["brats21"], limit=2, ablation=False, progress=False,
                    cache_dir=cache)
    settings.update(options)
    return evaluate_method(method, cohort, **settings)


def count_arrays(value):
    """numpy arrays reachable from a result (dataclasses, tuples, named tuples)."""
    if isinstance(value, np.ndarray):
        return 1
    if hasattr(value, "__dataclass_fields__"):
        return sum(count_arrays(getattr(value, name)) for name in value.__dataclass_fields__)
    if isinstance(value, (tuple, list)):
        return sum(count_arrays(item) for item in value)
    return 0


def test_planted_lesions_are_found_and_labels_line_up(tiny_cohort, grid_cache):
    result = quick(PlantedReconstruction(noise=0.05), tiny_cohort, grid_cache).set_result("brats21")
    scores = result.scores("val-dice")
    assert scores.source == "lesion-val" and scores.threshold.strategy == "val-dice"
    assert scores.dice.mean > 0.75 and scores.dice.n == 2  # the eroded brain mask trims lesions at its edge
    assert result.average_precision.mean > 0.85 and result.pooled_average_precision > 0.85
    assert result.pooled_roc_auc > 0.85  # lesion voxels in the rim the erosion removes score 0
    assert result.l1_ratio.mean > 3  # the planted residual is 0.3 inside lesions, <= 0.05 outside
    assert result.n_val == 2 and result.n_test == 2 and result.n_empty_target == 0
    assert all(volume.lesion_voxels > 0 for volume in result.volumes)
    for volume in result.volumes:  # the planted lesions are found as lesions too
        found = volume.segmentation("val-dice").lesion_counts
        assert found.lesions >= 1 and found.detected == found.lesions
    assert scores.lesion_recall.mean == 1.0 and scores.lesion_recall.n == 2
    assert scores.false_positive_components.mean >= 0


def test_each_volume_is_scored_once_and_memory_does_not_grow_with_volumes(tiny_cohort, grid_cache, monkeypatch):
    pools = []

    class RecordingPool(engine.VoxelPool):
        def __init__(self, capacity, dtype=np.float32):
            super().__init__(capacity, dtype)
            pools.append(capacity)

    monkeypatch.setattr(engine, "VoxelPool", RecordingPool)
    method = PlantedReconstruction()
    run = quick(method, tiny_cohort, grid_cache, limit=3, ablation=True)
    result = run.set_result("brats21")
    assert run.variants == ("full", "without CC", "without MF", "without BE")
    # One validation pool per post-processing variant, sized for the 3-volume split; none for the test split.
    assert pools == [3 * math.prod(MODEL_GRID_SHAPE)] * 4
    # Every validation and test volume reconstructed once for all four variants, plus the median
    # example (the best and worst slices are kept while the test split is scored) and the 2 healthy
    # IXI test volumes.
    validation = [subject.name for subject in split_subjects(tiny_cohort, "brats21", "val")]
    assert [example.role for example in result.examples] == ["best", "median", "worst"]
    expected = validation + [v.name for v in result.volumes] + [result.examples[1].volume] + [
        v.name for v in run.healthy.volumes]
    assert Counter(method.calls) == Counter(expected) and len(method.calls) == 3 + 3 + 1 + 2
    dice = [volume.dice("val-dice") for volume in result.volumes]
    assert [example.dice for example in result.examples] == sorted(dice, reverse=True)
    subjects = {subject.name: subject for subject in split_subjects(tiny_cohort, "brats21", "test")}
    for example in result.examples:  # kept or scored again, each slice is the volume's own
        volume = GridCache(grid_cache).load(subjects[example.volume])
        planted = planted_anomaly(volume, method.noise)[..., example.slice_index]
        np.testing.assert_allclose(example.anomaly_map, planted, atol=1e-6)
        np.testing.assert_array_equal(example.image, volume.image[..., example.slice_index])
    # Arrays kept: 5 per example slice and the fixed-size histograms; none per volume.
    assert count_arrays(result) == 5 * len(result.examples) + 3
    assert count_arrays(run.healthy) == 3
    assert all(example.image.shape == MODEL_GRID_SHAPE[:2] for example in result.examples)


def test_ablation_variants_share_the_maps_and_the_median_filter_matters(tiny_cohort, grid_cache):
    result = quick(PlantedReconstruction(noise=0.5), tiny_cohort, grid_cache, ablation=True).set_result("brats21")
    full, without_mf = result.scores("val-dice"), result.scores("val-dice", "without MF")
    # Uniform noise up to 0.5 overlaps the planted 0.3 + noise: only the median filter separates them.
    assert full.dice.mean > without_mf.dice.mean + 0.1
    assert full.threshold.value != without_mf.threshold.value
    assert {s.postprocessing for s in result.thresholded} == {"full", "without CC", "without MF", "without BE"}
    for volume in result.volumes:
        assert len(volume.segmentations) == 4


def test_threshold_rules_are_labelled_in_every_output(tiny_cohort, grid_cache, tmp_path):
    run = quick(PlantedReconstruction(), tiny_cohort, grid_cache, thresholds=["val-dice", "healthy-fpr", "oracle"],
                postprocessing=PostProcessing(components=False))
    labels = ("val-dice", "healthy-fpr-1%", "healthy-fpr-5%", "healthy-fpr-10%", "oracle")
    assert run.thresholds == labels
    result = run.set_result("brats21")
    for rate, label in zip((0.01, 0.05, 0.10), labels[1:4]):
        threshold = result.scores(label).threshold
        assert result.scores(label).source == "healthy-val"
        assert threshold.false_positive_rate <= rate and threshold.counts.tp == 0
    oracle = result.scores("oracle")
    assert oracle.source == "test"
    # Without component removal, re-scoring the archived test maps reproduces the oracle's search exactly,
    # and no threshold does better on the test split.
    assert oracle.pooled_dice == pytest.approx(oracle.threshold.dice, abs=1e-12)
    assert oracle.threshold.dice >= result.scores("val-dice").pooled_dice
    write_evaluation(summarise([run]), tmp_path)
    payload = json.loads((tmp_path / "summary.json").read_text())
    assert payload["summary"]["thresholds"] == list(labels)
    assert payload["summary"]["headline"] == "val-dice"
    stored = {item["threshold"]["strategy"] for item in payload["summary"]["groups"][0]["runs"][0]["sets"][0]
              ["thresholded"]}
    assert stored == set(labels)
    with (tmp_path / "per_volume.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert {row["threshold"] for row in rows if row["set"] == "brats21"} == set(labels)
    for row in rows:  # the oracle's rescored volumes carry lesion counts as well
        if row["set"] == "brats21":
            assert 0 <= int(row["lesions_detected"]) <= int(row["lesions"]) and int(row["fp_components"]) >= 0
    assert {row["set"] for row in rows} == {"brats21", "ixi"}
    markdown = (tmp_path / "tables.md").read_text()
    for label in labels:
        assert f"threshold: {label}" in markdown
    assert "upper bound" in markdown


def test_froc_and_size_bins_add_up_to_the_headline_counts(tiny_cohort, grid_cache):
    result = quick(PlantedReconstruction(noise=0.25), tiny_cohort, grid_cache, limit=3).set_result("brats21")
    found = [volume.segmentation("val-dice").lesion_counts for volume in result.volumes]
    at_headline = next(point for point in result.froc if point.factor == 1.0)
    assert at_headline.threshold == result.scores("val-dice").threshold.value
    assert (at_headline.lesions, at_headline.detected, at_headline.false_positives, at_headline.volumes) == (
        sum(c.lesions for c in found), sum(c.detected for c in found), sum(c.false_positives for c in found), 3)
    assert sum(size_bin.lesions for size_bin in result.recall_by_size) == at_headline.lesions
    assert sum(size_bin.detected for size_bin in result.recall_by_size) == at_headline.detected
    recalls = [point.recall for point in result.froc]  # a higher threshold finds no more lesions
    assert recalls == sorted(recalls, reverse=True) and recalls[0] > recalls[-1]


def test_healthy_thresholds_are_measured_on_the_healthy_test_split(tiny_cohort, grid_cache):
    thresholds = ["val-dice", "healthy-fpr", "conformal-fpr:0.4", "conformal-volume:0.4:0.5", "conformal-fpr"]
    run = quick(PlantedReconstruction(), tiny_cohort, grid_cache, limit=None, thresholds=thresholds)
    checks = {check.label: check for check in run.healthy.threshold_checks}
    assert list(checks) == ["healthy-fpr-1%", "healthy-fpr-5%", "healthy-fpr-10%", "conformal-fpr-40%",
                            "conformal-volume-40%-0.5ml", "conformal-fpr-5%"]
    # planted noise is uniform on [0, 0.2]: the realised rate on held-out volumes is near the nominal one
    assert checks["healthy-fpr-10%"].false_positive_rate.mean == pytest.approx(0.10, abs=0.05)
    assert checks["conformal-fpr-40%"].false_positive_rate.mean <= 0.4 + 0.1
    assert checks["conformal-volume-40%-0.5ml"].exceeding is not None and checks["healthy-fpr-1%"].exceeding is None
    # two validation volumes cannot bound 5 %: nothing of them is flagged, and the run says so
    assert checks["conformal-fpr-5%"].value == run.set_result("brats21").scores("conformal-fpr-5%").threshold.value
    assert any("conformal-fpr-5%: 2 healthy volumes cannot bound" in note for note in run.notes)
    keys = [table.key for table in build_tables(summarise([run]))]
    assert "table-healthy-thresholds" in keys and "table3-conformal-fpr-40pct" in keys


@pytest.mark.parametrize("modality, sets", [("t1", ["atlas", "wmh"]), ("t2", ["brats21", "mslub"])])
def test_default_sets_follow_the_modality(tiny_cohort, grid_cache, modality, sets):
    run = quick(PlantedMap(), tiny_cohort, grid_cache, modality=modality, sets=None, limit=1)
    assert [result.dataset for result in run.sets] == sets
    assert all(result.modality == modality for result in run.sets)


def test_wrong_modality_for_a_set_is_refused(tiny_cohort, grid_cache):
    with pytest.raises(ValueError, match="'brats21' is evaluated on t2"):
        quick(PlantedMap(), tiny_cohort, grid_cache, modality="t1", sets=["brats21"])


def test_method_without_reconstruction_has_no_reconstruction_table(tiny_cohort, grid_cache, tmp_path):
    run = quick(PlantedMap(), tiny_cohort, grid_cache, limit=1)
    result = run.set_result("brats21")
    assert run.healthy is None and run.test_levels is None
    assert result.l1_ratio is None and result.kld is None and result.densities is None
    assert result.examples[0].reconstruction is None
    assert any("no reconstruct()" in note for note in run.notes)
    files = write_evaluation(summarise([run]), tmp_path)
    assert not (tmp_path / "tables" / "table2.md").exists()
    assert (tmp_path / "tables" / "table3-val-dice.md").exists()
    report = files.report.read_text()
    assert "Table 2:" not in report and "Intensity histograms" not in report and "Table 3:" in report


def test_t_test_sweep_reuses_the_own_level_and_rescores_the_others(tiny_cohort, grid_cache):
    method = PlantedDiffusion()
    run = quick(method, tiny_cohort, grid_cache, limit=1, t_sweep=[100, 500, 1000])
    assert run.test_levels == (500,)
    assert [point.t_test for point in run.sweep] == [100, 500, 1000]
    levels = [level for _, level in method.calls]
    assert levels.count(100) == 2 and levels.count(1000) == 2  # one validation and one test volume each
    assert 500 not in levels  # the method's own level is its default call
    low, high = run.sweep_result(100, "brats21"), run.sweep_result(1000, "brats21")
    assert low.scores("val-dice").dice.mean > high.scores("val-dice").dice.mean
    assert run.sweep_result(500, "brats21") is run.set_result("brats21")
    tables = {table.key: table for table in build_tables(summarise([run]))}
    assert [row.labels[2] for row in tables["table-t-test"].rows] == ["100", "500", "1000"]


def test_sweep_of_a_non_diffusion_method_is_skipped_with_a_note(tiny_cohort, grid_cache):
    run = quick(PlantedReconstruction(), tiny_cohort, grid_cache, limit=1, t_sweep=[250])
    assert run.sweep == () and any("t_test sweep skipped" in note for note in run.notes)


@pytest.mark.parametrize("thresholds, message", [
    (["oracle"], "cannot be the only"), (["val-dise"], "unknown threshold"), ([], "non-empty")])
def test_bad_threshold_names(thresholds, message):
    with pytest.raises(ValueError, match=message):
        threshold_rules(thresholds)


def test_headline_is_the_first_real_threshold():
    rules = threshold_rules(["oracle", "healthy-fpr", "val-dice"])
    assert [rule.label for rule in rules] == ["healthy-fpr-1%", "oracle", "healthy-fpr-5%", "healthy-fpr-10%",
                                              "val-dice"]


def test_ablation_variants_drop_one_step_each():
    variants = postprocessing_variants(PostProcessing(), True)
    assert [v.label for v in variants] == ["full", "without CC", "without MF", "without BE"]
    assert not variants[1].postprocessing.components and variants[1].postprocessing.median
    assert not variants[2].postprocessing.median and not variants[3].postprocessing.erosion
    assert [v.label for v in postprocessing_variants(PostProcessing(median=False), True)] == [
        "full", "without CC", "without BE"]


@pytest.mark.parametrize("option, message", [({"limit": 0}, "limit"), ({"fold": 5}, "fold"),
                                             ({"modality": "flair"}, "modality"), ({"sets": ["ixi"]}, "ixi"),
                                             ({"t_sweep": [0]}, "t_sweep")])
def test_bad_arguments(tiny_cohort, option, message):
    with pytest.raises(ValueError, match=message):
        quick(PlantedMap(), tiny_cohort, None, **option)


# --------------------------------------------------------------------------------------------
# Run directories and the command
# --------------------------------------------------------------------------------------------

TINY = ["model.base_channels=4", "model.channel_mult=[1,1,1,1,1]", "model.groups=2",
        "model.attention_head_channels=4", "diffusion.noise.kind=gaussian"]


def write_run(run_dir, cohort, overrides, seed):
    config = load_config("configs/tiny/ddpm.yaml", [f"data.root={cohort}", *TINY, *overrides])
    torch.manual_seed(seed)
    method = build_detector(config)
    with torch.no_grad():
        for parameter in method.unet.output_conv.parameters():
            parameter.normal_(0, 0.05)
    write_config(run_dir, config)
    save_weights(run_dir / "model.safetensors", method.state_dict())
    return run_dir


@pytest.fixture(scope="module")
def command_output(tiny_cohort, tmp_path_factory):
    """Three runs: two folds of one DDPM and another DDPM (t_test 250), evaluated through the command."""
    runs = tmp_path_factory.mktemp("runs")
    dirs = [write_run(runs / "ddpm-f0", tiny_cohort, ["data.fold=0", "data.num_workers=2"], 0),
            write_run(runs / "ddpm-f1", tiny_cohort, ["data.fold=1"], 1),
            write_run(runs / "ddpm-t250", tiny_cohort, ["diffusion.t_test=250"], 2)]
    out = tmp_path_factory.mktemp("evaluation")
    app = typer.Typer()
    app.command()(evaluate)
    result = CliRunner().invoke(app, [*map(str, dirs), "--data", str(tiny_cohort), "--out", str(out), "--limit", "1",
                                      "--sets", "brats21", "--no-ablation", "--cache-dir", str(runs / "cache")])
    return result, out


def test_command_writes_every_output(command_output):
    result, out = command_output
    assert result.exit_code == 0, result.output
    for name in ("summary.json", "per_volume.csv", "report.html", "tables.md", "tables/table2.md",
                 "tables/table2.csv", "tables/table2.tex", "tables/table3-val-dice.md", "tables/table3-val-dice.csv",
                 "tables/table3-val-dice.tex"):
        assert (out / name).is_file(), name
    assert not (out / "tables" / "table4.md").exists()  # --no-ablation
    assert not list(out.rglob(".tmp-*"))
    assert "report:" in result.output and "report.html" in result.output
    assert "LPIPS skipped: no --lpips-weights given" in result.output


def test_folds_are_aggregated_and_models_compared(command_output):
    _, out = command_output
    payload = json.loads((out / "summary.json").read_text())
    groups = payload["summary"]["groups"]
    assert [group["label"] for group in groups] == ["ddpm [diffusion.t_test=500]", "ddpm [diffusion.t_test=250]"]
    assert [[run["fold"] for run in group["runs"]] for group in groups] == [[0, 1], [0]]
    table3 = next(table for table in payload["tables"] if table["key"] == "table3-val-dice")
    assert [row["labels"] for row in table3["rows"]] == [["ddpm [diffusion.t_test=500]", "2"],
                                                         ["ddpm [diffusion.t_test=250]", "1"]]
    first = table3["rows"][0]["cells"][0]["value"]
    assert first["n"] == 2 and first["ddof"] == 1
    folds = [run["sets"][0]["thresholded"][0]["dice"]["mean"] for run in groups[0]["runs"]]
    assert first["mean"] == pytest.approx(np.mean(folds))
    assert table3["comparisons"] and all(c["best"] in (groups[0]["label"], groups[1]["label"])
                                         for c in table3["comparisons"])
    markdown = (out / "tables" / "table3-val-dice.md").read_text().splitlines()
    header = next(line for line in markdown if line.startswith("| Model"))
    assert "BraTS21 (T2) Dice [%] ↑" in header and "BraTS21 (T2) AUPRC pooled [%] ↑" in header
    rows = [line for line in markdown if line.startswith("| ddpm")]
    assert len(rows) == 2 and " ± " in rows[0] and " ± " not in rows[1]


def test_bad_run_directory_gives_a_clean_error(tiny_cohort, tmp_path):
    missing = tmp_path / "no-such-run"
    with pytest.raises(InputError, match="no-such-run: run directory not found"):
        evaluate_runs([missing], tiny_cohort, tmp_path / "out", progress=False)
    empty = tmp_path / "empty-run"
    empty.mkdir()
    app = typer.Typer()
    app.command()(evaluate)
    result = CliRunner().invoke(app, [str(empty), "--data", str(tiny_cohort), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "empty-run" in result.output and "no config.yaml" in result.output
    assert not (tmp_path / "out").exists()


def test_run_of_the_wrong_modality_for_a_set_is_named(tiny_cohort, tmp_path):
    runs = tmp_path / "runs"
    write_run(runs / "t2-run", tiny_cohort, [], 0)
    with pytest.raises(InputError, match="t2-run.*'atlas' is evaluated on t1"):
        evaluate_runs([runs / "t2-run"], tiny_cohort, tmp_path / "out", sets=["atlas"], progress=False)


def test_out_of_range_t_test_names_the_run(tiny_cohort, tmp_path):
    run = write_run(tmp_path / "runs" / "ddpm", tiny_cohort, [], 0)
    with pytest.raises(InputError, match="ddpm: t_test 5000 lies outside the 1..1000"):
        evaluate_runs([run], tiny_cohort, tmp_path / "out", t_sweep=[250, 5000], progress=False)


@pytest.mark.parametrize("arguments, message", [(["--threshold", "val-dise"], "unknown threshold"),
                                                (["--sets", "brats"], "unknown lesion set"),
                                                (["--t-test", "250,x"], "integer levels")])
def test_command_rejects_bad_options(tiny_cohort, tmp_path, arguments, message):
    app = typer.Typer()
    app.command()(evaluate)
    result = CliRunner().invoke(app, [str(tmp_path), "--data", str(tiny_cohort), *arguments])
    assert result.exit_code == 2 and message in result.output


def test_split_list_accepts_commas_and_repeats():
    assert split_list(["brats21,mslub", " wmh "]) == ["brats21", "mslub", "wmh"]
    assert split_list(None) == []


def test_summary_rejects_two_runs_of_one_fold(tiny_cohort, grid_cache):
    run = quick(PlantedMap(), tiny_cohort, grid_cache, limit=1)
    with pytest.raises(ValueError, match=r"same model, modality and fold \(t2, fold 0\)"):
        summarise([run, run])
    assert isinstance(summarise([run]), EvaluationSummary)


def test_evaluate_stores_the_headline_thresholds_in_each_run(tiny_cohort, grid_cache, tmp_path):
    from dataclasses import replace

    run = write_run(tmp_path / "runs" / "ddpm", tiny_cohort, [], 0)
    assert run_thresholds.read_run_thresholds(run) == ()
    out = tmp_path / "evaluation"
    postprocessing = PostProcessing(order="authors_code")
    summary = evaluate_runs([run], tiny_cohort, out, sets=["brats21"], thresholds=["oracle", "val-dice"], limit=1,
                            ablation=False, postprocessing=postprocessing, cache_dir=grid_cache, progress=False)
    chosen = summary.runs[0].set_result("brats21").scores("val-dice").threshold
    stored = run_thresholds.read_run_thresholds(run)
    assert stored == (run_thresholds.RunThreshold("brats21", "val-dice", "lesion-val", chosen.value, postprocessing, 1,
                                            (out / "summary.json").resolve()),)
    assert run_thresholds.summary_thresholds(out / "summary.json", run) == stored
    assert not list(run.glob(".tmp-*"))
    # a later evaluation of other sets keeps the stored ones; sets stay in the protocol's order
    mslub = replace(stored[0], dataset="mslub", value=0.5)
    run_thresholds.write_run_thresholds(run, [mslub])
    run_thresholds.write_run_thresholds(run, [replace(stored[0], value=0.25)])
    assert [(record.dataset, record.value) for record in run_thresholds.read_run_thresholds(run)] == [("brats21", 0.25),
                                                                                               ("mslub", 0.5)]
    with pytest.raises(InputError, match="holds no run named 'other'"):
        run_thresholds.summary_thresholds(out / "summary.json", tmp_path / "other")
    (run / "thresholds.json").write_text('{"thresholds": [{"dataset": "brats21"}]}')
    with pytest.raises(InputError, match="thresholds.json: is not a readable thresholds file"):
        run_thresholds.read_run_thresholds(run)
    run_thresholds.write_run_thresholds(run, [mslub])  # an unreadable file is replaced
    assert run_thresholds.read_run_thresholds(run) == (mslub,)


def test_where_and_how_a_run_executed_does_not_split_folds():
    """Runs that differ in execution settings only (data directory, batch sizes at test time,
    memory format) are folds of one model; a model setting makes another model."""
    from brainuad.config import packaged_config
    from brainuad.evaluate.runs import _model_settings
    from brainuad.methods.registry import load_config

    def settings(method, *overrides):
        return _model_settings(load_config(packaged_config(f"tiny/{method}"), list(overrides)))

    assert settings("ddpm", "data.fold=0") == settings("ddpm", "data.fold=3", "data.root=elsewhere",
                                                       "diffusion.inference_batch_size=7", "train.channels_last=false")
    assert settings("ae", "data.fold=0") == settings("ae", "data.fold=1", "model.inference_batch_size=3")
    assert settings("dae") == settings("dae", "dae.inference_batch_size=5")
    assert settings("ddpm") != settings("ddpm", "diffusion.t_test=250")
