"""Experiment files: typed, unknown keys and bad values named with the file; the shipped files."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from brainuad.errors import ConfigError
from brainuad.experiment.reference import REFERENCE_ROWS, reference_metric
from brainuad.experiment.spec import Experiment, experiment_file, load_experiment, packaged_experiments

MINIMAL = """
name: x
folds: [0]
modalities: [t2]
methods:
  - {label: DDPM, config: tiny/ddpm}
"""


def _write(tmp_path, text):
    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    return path


def test_minimal_file_gets_the_papers_defaults(tmp_path):
    experiment = load_experiment(_write(tmp_path, MINIMAL))
    assert experiment.methods[0].run_key == "ddpm"
    assert experiment.evaluation.thresholds == ("val-dice",) and experiment.evaluation.postprocess_order == "paper"
    assert experiment.studies.ablation and experiment.studies.domain_shift is None
    defaults = load_experiment(_write(tmp_path, MINIMAL.replace("folds: [0]\nmodalities: [t2]\n", "")))
    assert defaults.folds == (0, 1, 2, 3, 4) and defaults.modalities == ("t2", "t1")


@pytest.mark.parametrize(("change", "replacement", "named"), [
    ("name: x\n", "name: x\nlearning_rate: 3\n", "learning_rate"),
    ("{label: DDPM, config: tiny/ddpm}", "{label: DDPM, config: tiny/ddpm, extra: 1}", "methods.0.extra"),
    ("folds: [0]", "folds: [0, 5]", "folds"),
    ("folds: [0]", "folds: [0, 0]", "folds"),
    ("modalities: [t2]", "modalities: [flair]", "modalities.0"),
    ("{label: DDPM, config: tiny/ddpm}", "{label: DDPM, config: tiny/ddpm, reference: nope}", "no published row"),
    ("{label: DDPM, config: tiny/ddpm}", "{label: DDPM, config: tiny/ddpm, key: 'Bad Key'}", "methods.0.key"),
])
def test_bad_values_are_named_with_the_file(tmp_path, change, replacement, named):
    with pytest.raises(ConfigError, match="experiment.yaml") as error:
        load_experiment(_write(tmp_path, MINIMAL.replace(change, replacement)))
    assert named in str(error.value)


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"learning_rate.*[Ee]xtra"):
        load_experiment(_write(tmp_path, MINIMAL + "learning_rate: 3\n"))


def test_two_methods_with_one_label_or_key_are_refused(tmp_path):
    twice = MINIMAL + "  - {label: DDPM, config: tiny/ddpm}\n"
    with pytest.raises(ConfigError, match="share the key ddpm"):
        load_experiment(_write(tmp_path, twice))
    study = MINIMAL + "studies:\n  domain_shift: {methods: [cDDPM]}\n"
    with pytest.raises(ConfigError, match="names no method"):
        load_experiment(_write(tmp_path, study))
    folds = MINIMAL + "studies:\n  domain_shift: {folds: [3]}\n"
    with pytest.raises(ConfigError, match="not among"):
        load_experiment(_write(tmp_path, folds))


def test_not_a_mapping_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="mapping"):
        load_experiment(_write(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_experiment(_write(tmp_path, "name: [\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_experiment(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="shipped experiments: .*tiny"):
        experiment_file("no-such-experiment")


def test_shipped_experiments_load():
    names = packaged_experiments()
    assert {"tiny", "paper-table2", "paper-table3", "paper-domain-shift", "paper-t-test"} <= set(names)
    for name in names:
        load_experiment(experiment_file(name))
    table3 = load_experiment(experiment_file("paper-table3"))
    # every published row, then the follow-up methods
    assert [entry.label for entry in table3.methods] == [*REFERENCE_ROWS, "cDDPM 2.5-D + SSL + ENS",
                                                         "cDDPM T2+T1 + SSL + ENS"]
    assert [entry.modalities for entry in table3.methods][-2:] == [None, ("t2",)]
    assert table3.folds == (0, 1, 2, 3, 4) and table3.modalities == ("t2", "t1")


def test_reference_rows_hold_the_papers_figures():
    cddpm = REFERENCE_ROWS["cDDPM + SSL + ENS"].values
    assert cddpm[("brats21", "dice")] == (53.37, None) and cddpm[("ixi", "ssim")] == (96.80, 0.19)
    assert REFERENCE_ROWS["Thresh"].values[("wmh", "auprc")] == (4.72, None)
    assert reference_metric("Dice [%] ↑") == "dice" and reference_metric("KLD ↓") is None


def test_a_method_may_train_on_some_of_the_experiments_modalities():
    base = {"name": "x", "modalities": ["t2", "t1"], "methods": [{"label": "a", "config": "tiny/ddpm"}]}
    assert Experiment.model_validate(base).methods[0].modalities is None
    only = {**base, "methods": [{"label": "a", "config": "tiny/cddpm_mc", "modalities": ["t2"]}]}
    assert Experiment.model_validate(only).methods[0].modalities == ("t2",)
    for modalities in (["t1", "t1"], [], ["t2"]):
        wrong = {**base, "modalities": ["t1"] if modalities == ["t2"] else ["t2", "t1"],
                 "methods": [{"label": "a", "config": "tiny/cddpm_mc", "modalities": modalities}]}
        with pytest.raises(ValidationError, match="a: modalities must be distinct modalities of the experiment"):
            Experiment.model_validate(wrong)
