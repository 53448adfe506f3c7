"""Batch processing: failures and crashes are reported, the others finish, finished jobs are skipped."""

import pytest
from preprocess.batch_work import work as _work  # tests/preprocess/batch_work.py

from brainuad.preprocess.batch import NamedJob, run_jobs


def test_failures_and_crashes_are_reported_and_the_others_finish(tmp_path):
    behaviours = ["fine", "input-error", "fine", "crash", "bug", "fine"]
    jobs = []
    for index, behaviour in enumerate(behaviours):
        folder = tmp_path / f"job{index}"
        folder.mkdir()
        jobs.append(NamedJob(f"job{index}", (str(folder), behaviour)))
    log = tmp_path / "batch.log"
    summary = run_jobs(jobs, _work, workers=2, log=log, progress=False)
    assert sorted(summary.names("done")) == ["job0", "job2", "job5"]
    reasons = {result.name: result.reason for result in summary.failed}
    assert "scan.nii.gz" in reasons["job1"] and "truncated" in reasons["job1"]
    assert "exit code 7" in reasons["job3"]
    assert reasons["job4"].startswith("KeyError") and "batch_work.py" in reasons["job4"]
    text = log.read_text()
    assert "failed job1" in text and "done job0" in text and "Traceback" in text
    assert len(summary.results) == 6 and not summary.names("skipped")


def test_finished_jobs_are_skipped(tmp_path):
    jobs = [NamedJob(f"job{index}", (str(tmp_path), "fine")) for index in range(3)]
    summary = run_jobs(jobs, _work, workers=1, is_done=lambda job: job is jobs[1].job, progress=False)
    assert summary.names("skipped") == ["job1"] and len(summary.names("done")) == 2


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="workers"):
        run_jobs([], _work, workers=0)
    with pytest.raises(ValueError, match="unique"):
        run_jobs([NamedJob("a", (str(tmp_path), "fine"))] * 2, _work)
