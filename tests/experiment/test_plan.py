"""Planning: every run of an experiment with its validated config, pre-trainings first, --only."""

from __future__ import annotations

import pytest

from brainuad.errors import ConfigError, InputError
from brainuad.experiment.plan import plan_experiment
from brainuad.experiment.spec import experiment_file, load_experiment


def _plan(name, cohort, out, **options):
    source = experiment_file(name)
    return plan_experiment(load_experiment(source), source, cohort, out, **options)


def test_paper_table3_plans_every_row_fold_and_modality(tiny_cohort, tmp_path):
    plan = _plan("paper-table3", tiny_cohort, tmp_path / "out")
    models = [run for run in plan.runs if run.kind == "model"]
    pretrainings = [run for run in plan.runs if run.kind == "pretrain"]
    # 13 rows of the paper and 2 follow-up methods on T2 and T1, the multi-contrast cDDPM on T2 (it
    # reads T1 beside it); one SparK encoder per fold and modality
    assert len(models) == 15 * 5 * 2 + 5 and len(pretrainings) == 5 * 2
    contrast = plan.run("cddpm-mc-ssl-ens-t2-fold1")
    assert contrast.needs == "pretrain-spark-t2-fold1" and contrast.config.encoder.contrasts == ("t1",)
    assert not [run for run in models if run.key.startswith("cddpm-mc") and run.modality == "t1"]
    assert plan.runs[:len(pretrainings)] == tuple(pretrainings)
    assert {(run.modality, run.fold) for run in pretrainings} == {(m, f) for m in ("t1", "t2") for f in range(5)}
    ssl = plan.run("cddpm-ssl-t1-fold3")
    assert ssl.needs == "pretrain-spark-t1-fold3"
    assert ssl.config.encoder.pretrained == plan.run(ssl.needs).run_dir / "encoder.safetensors"
    assert ssl.config.diffusion.ensemble is None and ssl.config.diffusion.t_test == 500
    assert plan.run("cddpm-ssl-ens-t2-fold0").config.diffusion.ensemble == (250, 500, 750)
    assert plan.run("ddpm-ens-t2-fold0").config.diffusion.ensemble == (250, 500, 750)
    assert plan.run("cddpm-t2-fold0").config.encoder.pretrained is None
    stacked = plan.run("cddpm25d-ssl-ens-t1-fold2")
    assert stacked.needs == "pretrain-spark-t1-fold2" and stacked.config.encoder.neighbours == 1
    assert plan.run("pddpm-iqa-t2-fold0").config.diffusion.t_test == 750
    for run in models:
        assert (run.config.data.modality, run.config.data.fold) == (run.modality, run.fold)
        assert run.run_dir == tmp_path / "out" / "runs" / run.key
    # the paper's budget: 1600 epochs of one slice per training volume
    assert plan.run("ddpm-t2-fold0").steps == 1600 and plan.run("thresh-t2-fold0").steps == 0


def test_config_hash_ignores_where_a_run_executes(tiny_cohort, tmp_path):
    cpu = _plan("tiny", tiny_cohort, tmp_path / "a", accelerator="cpu")
    gpu = _plan("tiny", tiny_cohort, tmp_path / "b", accelerator="gpu")
    assert cpu.run("ddpm-t2-fold0").config.train.accelerator == "cpu"
    assert [run.config_hash for run in cpu.runs] == [run.config_hash for run in gpu.runs]
    assert len({run.config_hash for run in cpu.runs}) == len(cpu.runs)  # folds and models differ


def test_only_selects_runs_and_pulls_in_their_pretraining(tiny_cohort, tmp_path):
    plan = _plan("paper-table3", tiny_cohort, tmp_path, only=("cddpm-ssl-t2-fold1", "thresh-*-fold0"))
    assert plan.selected == ("pretrain-spark-t2-fold1", "thresh-t2-fold0", "thresh-t1-fold0", "cddpm-ssl-t2-fold1")
    with pytest.raises(ConfigError, match="matches no run"):
        _plan("tiny", tiny_cohort, tmp_path, only=("vae-*",))


def test_a_config_that_does_not_validate_is_refused_before_training(tiny_cohort, tmp_path):
    source = tmp_path / "bad.yaml"
    source.write_text("name: bad\nfolds: [0]\nmodalities: [t2]\nmethods:\n"
                      "  - {label: DDPM, config: tiny/ddpm, overrides: [train.lr=-1]}\n")
    with pytest.raises(ConfigError, match="lr"):
        plan_experiment(load_experiment(source), source, tiny_cohort, tmp_path / "out")
    source.write_text("name: bad\nfolds: [0]\nmodalities: [t2]\nmethods:\n  - {label: S, config: tiny/spark}\n")
    with pytest.raises(ConfigError, match="anomaly detector"):
        plan_experiment(load_experiment(source), source, tiny_cohort, tmp_path / "out")
    source.write_text("name: bad\nfolds: [0]\nmodalities: [t2]\nmethods:\n"
                      "  - {label: C, config: tiny/cddpm, pretrain: tiny/ddpm}\n")
    with pytest.raises(ConfigError, match="SparK"):
        plan_experiment(load_experiment(source), source, tiny_cohort, tmp_path / "out")
    source.write_text("name: bad\nfolds: [0]\nmodalities: [t2]\nmethods:\n  - {label: C, config: missing.yaml}\n")
    with pytest.raises(ConfigError, match="missing.yaml"):
        plan_experiment(load_experiment(source), source, tiny_cohort, tmp_path / "out")


def test_a_missing_contrast_is_found_before_anything_trains(cohort_copy, tmp_path):
    plan = _plan("synthetic", cohort_copy, tmp_path / "out")
    assert plan.run("cddpm-mc-t2-fold1").config.encoder.contrasts == ("t1",)
    t1 = next((cohort_copy / "Test" / "MSLUB" / "t1").glob("*_t1.nii.gz"))
    t1.unlink()
    with pytest.raises(InputError, match=f"{t1.name}: cDDPM T2\\+T1 reads the t1 image of every subject beside its "
                                         "t2, and 1 file"):
        _plan("synthetic", cohort_copy, tmp_path / "out")
