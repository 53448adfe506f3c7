"""The worked example of docs/adding-a-method.md works as printed."""

import re
import sys
import types
from pathlib import Path

import numpy as np

from brainuad.data.cache import GridCache
from brainuad.data.layout import split_subjects
from brainuad.methods import registry
from brainuad.train import train_run

DOC = Path(__file__).resolve().parents[1] / "docs" / "adding-a-method.md"


def _example_module() -> types.ModuleType:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1, "the page has one Python block: the worked example"
    module = types.ModuleType("brainuad_docs_median")
    sys.modules[module.__name__] = module  # pydantic resolves the annotations through the module
    exec(compile(blocks[0], str(DOC), "exec"), module.__dict__)
    return module


def test_the_worked_example_trains_and_scores(tiny_cohort, tmp_path, monkeypatch):
    module = _example_module()
    spec = module.MEDIAN_SPEC
    monkeypatch.setitem(registry.SPECS, spec.name, spec)
    config = spec.config.model_validate({"method": "median", "data": {"root": str(tiny_cohort), "num_workers": 0,
                                                                       "val_slices_per_volume": 1}})
    summary = train_run(config, tmp_path / "median", progress=False)
    assert summary.method == "median" and summary.best_val_loss > 0
    assert (tmp_path / "median" / "config.yaml").read_text().startswith("method: median")
    method = registry.build_detector(config)
    volume = GridCache().load(split_subjects(tiny_cohort, "brats21", "test")[0])
    scores = method.anomaly_map(volume)
    assert scores.shape == (96, 96, 50) and np.isfinite(scores).all()
    x, y, z = 40, 50, 25
    expected = np.median(volume.image[x - 3:x + 4, y - 3:y + 4, z])
    assert np.isclose(scores[x, y, z], abs(volume.image[x, y, z] - expected), atol=1e-6)
