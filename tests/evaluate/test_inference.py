"""Scoring settings never change a result: batched inference, loader workers, sharded processes."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import stream_a_shard_where_rank_1_fails

from brainuad.data.grid import GridVolume
from brainuad.data.layout import Subject
from brainuad.errors import InputError
from brainuad.evaluate.inference import Inference
from brainuad.evaluate.results import to_jsonable
from brainuad.evaluate.runs import evaluate_runs
from brainuad.evaluate.scoring import ScoredVolume, VolumeScorer
from brainuad.evaluate.stream import Shard, scored_volumes
from brainuad.methods.registry import build_detector, load_config
from brainuad.run_directory import write_config
from brainuad.weights import save_weights

TINY_DDPM = ["model.base_channels=4", "model.channel_mult=[1,1,1,1,1]", "model.groups=2",
             "model.attention_head_channels=4", "diffusion.ensemble=[250,750]", "diffusion.noise.kind=gaussian"]


def ensemble_run(run_dir, cohort):
    """An untrained tiny DDPM with a 2-level ensemble, its zero-initialised layers randomised so
    that its reconstructions depend on the noise and the levels (the batching of conditioned
    models is tested with the methods)."""
    config = load_config("configs/tiny/ddpm.yaml", [f"data.root={cohort}", *TINY_DDPM])
    torch.manual_seed(0)
    method = build_detector(config)
    with torch.no_grad():
        for parameter in method.parameters():
            if parameter.abs().sum() == 0:
                parameter.normal_(0, 0.05)
    write_config(run_dir, config)
    save_weights(run_dir / "model.safetensors", method.state_dict())
    return run_dir


def close(a, b, path="result"):
    """Equal JSON trees, floats to 1e-6 relative (nan equal to nan)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for index, (x, y) in enumerate(zip(a, b)):
            close(x, y, f"{path}[{index}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9), (path, a, b)
    else:
        assert a == b, path


@pytest.fixture(scope="module")
def evaluations(tiny_cohort, tmp_path_factory):
    """One ensemble DDPM run evaluated (3 volumes a split, three threshold rules) one volume per batch in
    one process, with batched slices and a loader worker, and sharded over two gloo processes."""
    folder = tmp_path_factory.mktemp("inference")
    run = ensemble_run(folder / "ddpm", tiny_cohort)
    settings = {"single": Inference(), "batched": Inference(batch_slices=1000, workers=1),
                "sharded": Inference(devices=2)}
    results = {}
    for label, inference in settings.items():
        summary = evaluate_runs([run], tiny_cohort, folder / label, sets=["brats21"],
                                thresholds=["val-dice", "healthy-fpr", "oracle"], limit=3, ablation=False,
                                inference=inference, cache_dir=folder / "cache", progress=False)
        results[label] = json.loads(json.dumps(to_jsonable(summary.runs[0])))
    return results


def test_two_processes_give_the_result_of_one_exactly(evaluations):
    assert evaluations["sharded"] == evaluations["single"]


def test_volumes_batched_together_give_the_same_result(evaluations):
    close(evaluations["batched"], evaluations["single"])
    healthy = evaluations["single"]["healthy"]
    assert healthy["n"] == 2 and healthy["ssim"]["mean"] < 1  # the reconstructions are not the inputs


class CountingScorer(VolumeScorer):
    """Scores a volume with its own image; records the batches it was given."""

    def __init__(self, per_batch):
        self.per_batch = per_batch
        self.batches = []

    @property
    def volumes_per_batch(self):
        return self.per_batch

    def _score_many(self, volumes):
        self.batches.append([volume.name for volume in volumes])
        return [ScoredVolume(volume.image.copy(), None) for volume in volumes]


def subjects(count):
    return [Subject(f"s{i}", Path(f"s{i}.nii.gz"), Path(f"s{i}_mask.nii.gz"), None, 0) for i in range(count)]


def load(subject):
    if subject.name == "s3":
        raise InputError(subject.image, "is not a NIfTI file")
    value = float(subject.name[1:])
    return GridVolume(np.full((2, 2, 2), value, dtype=np.float32), np.ones((2, 2, 2), bool), None, subject.name, None)


@pytest.mark.parametrize("workers", [0, 1])
def test_the_stream_keeps_the_order_and_fills_batches(workers):
    scorer = CountingScorer(2)
    streamed = list(scored_volumes(scorer, subjects(3), load, workers=workers))
    assert [subject.name for subject, _, _ in streamed] == ["s0", "s1", "s2"]
    assert [float(scored.anomaly_map[0, 0, 0]) for _, _, scored in streamed] == [0.0, 1.0, 2.0]
    assert scorer.batches == [["s0", "s1"], ["s2"]]


@pytest.mark.parametrize("workers", [0, 1])
def test_a_volume_that_cannot_be_read_raises_its_own_error(workers):
    with pytest.raises(InputError, match="s3.nii.gz: is not a NIfTI file"):
        list(scored_volumes(CountingScorer(2), subjects(5), load, workers=workers))


def test_shards_share_a_batch_out_in_turn():
    assert list(Shard(1, 3).share(7)) == [1, 4]
    assert list(Shard(0, 2).share(1)) == [0] and list(Shard(1, 2).share(1)) == []
    with pytest.raises(ValueError, match="rank 2 must lie in 0..1"):
        Shard(2, 2)


def test_a_rank_that_cannot_score_its_share_stops_every_rank(tmp_path):
    """Rank 1's scorer raises on its share (s1 and s3): rank 1 raises its own error and rank 0 one
    naming the rank and the volumes, both at once (no rank waits for a share that never comes)."""
    context = torch.multiprocessing.get_context("spawn")
    outcomes = context.Queue()
    processes = [context.Process(target=stream_a_shard_where_rank_1_fails,
                                 args=(rank, 2, str(tmp_path / "group"), outcomes)) for rank in range(2)]
    for process in processes:
        process.start()
    try:
        results = dict((rank, (kind, message)) for rank, kind, message in (outcomes.get(timeout=120)
                                                                          for _ in processes))
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    assert results[1] == ("FloatingPointError", "residual of s3 is not finite")
    assert results[0] == ("BrainUADError", "rank 1 could not score volumes s1, s3: FloatingPointError: "
                                           "residual of s3 is not finite")


@pytest.mark.parametrize(("options", "message"), [
    ({"device": "mps"}, "device must be cpu, cuda or cuda:N"),
    ({"device": "cuda:1", "devices": 2}, "give device 'cuda'"),
    ({"batch_slices": 0}, "batch_slices"),
    ({"workers": -1}, "workers"),
    ({"devices": 0}, "devices"),
])
def test_inference_settings_are_checked(options, message):
    with pytest.raises(ValueError, match=message):
        Inference(**options)
