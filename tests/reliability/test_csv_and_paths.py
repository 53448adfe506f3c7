"""Split CSVs that are missing, unreadable or of the wrong columns; paths with spaces and non-ASCII
characters through every command."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brainuad.cli import app

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
CSV_CASES = {
    "missing": None,
    "binary": b"\xff\xfe\x00\x01img_name\x00\x9c\x9d",
    "wrong-columns": b"subject,path\nIXI-SYN-0003,/Train/ixi/t2/IXI-SYN-0003_t2.nii.gz\n",
    "short-row": b"img_name,age,label,img_path,mask_path,seg_path\nIXI-SYN-0003,30\n",
}
PHRASES = {"missing": "not found", "binary": "is not a readable CSV text file",
           "wrong-columns": "missing column(s) img_name", "short-row": "line 2: bad value"}


def _flat(result) -> str:
    return " ".join(result.output.split())


@pytest.mark.parametrize("case", sorted(CSV_CASES))
@pytest.mark.parametrize("entry", ["validate", "train", "evaluate"])
def test_bad_split_csv(case, entry, tiny_cohort, thresh_run, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_cohort, data, copy_function=os.link)
    name = "Brats21_val.csv" if entry == "evaluate" else "IXI_train_fold0.csv"
    csv_path = data / "splits" / name
    csv_path.unlink()
    if CSV_CASES[case] is not None:
        csv_path.write_bytes(CSV_CASES[case])
    arguments = {
        "validate": ["validate", str(data), "--set", "ixi"],
        "train": ["train", str(CONFIGS / "tiny" / "thresh.yaml"), "--data", str(data), "--out", str(tmp_path / "run")],
        "evaluate": ["evaluate", str(thresh_run), "--data", str(data), "--out", str(tmp_path / "evaluation"),
                     "--sets", "brats21", "--limit", "1", "--no-ablation"],
    }[entry]
    result = CliRunner().invoke(app, arguments)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == (1 if entry == "validate" else 2), _flat(result)
    phrase = "split CSV of ixi is missing" if (case, entry) == ("missing", "validate") else PHRASES[case]
    assert name in _flat(result) and phrase in _flat(result), _flat(result)


def test_paths_with_spaces_and_non_ascii_characters(tiny_cohort, tmp_path):
    base = tmp_path / "Études et données" / "run 1 ü"
    data = base / "données IRM"
    shutil.copytree(tiny_cohort, data, copy_function=os.link)
    runner = CliRunner()
    run = base / "exécution thresh"
    steps = [
        ["validate", str(data), "--set", "brats21"],
        ["train", str(CONFIGS / "tiny" / "thresh.yaml"), "--data", str(data), "--out", str(run)],
        ["evaluate", str(run), "--data", str(data), "--out", str(base / "évaluation"), "--sets", "brats21",
         "--limit", "1", "--no-ablation"],
        ["predict", str(run), str(data / "Test" / "Brats21" / "t2"), "--out", str(base / "prédictions ß")],
    ]
    for arguments in steps:
        result = runner.invoke(app, arguments)
        assert result.exit_code == 0, (arguments[0], _flat(result))
    assert (base / "évaluation" / "report.html").is_file()
    assert len(list((base / "prédictions ß").glob("*_anomaly.nii.gz"))) == 6


def test_synth_into_a_path_with_spaces_and_non_ascii_characters(tmp_path, monkeypatch):
    import brainuad.data.synth.cohort as cohort

    monkeypatch.setitem(cohort.SIZES, "tiny", cohort.CohortSize(2, 1, 1, 1, 1))  # 13 subjects: a quick cohort
    out = tmp_path / "données synthétiques" / "cohorte ü"
    result = CliRunner().invoke(app, ["synth", str(out), "--size", "tiny", "--workers", "1"])
    assert result.exit_code == 0, _flat(result)
    assert CliRunner().invoke(app, ["validate", str(out)]).exit_code == 0
