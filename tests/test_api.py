import subprocess
import sys

import numpy as np
import pytest

from brainuad.data.io import read_image
from brainuad.data.volume import Volume
from brainuad.errors import InputError
from brainuad.predict import PredictionResult


def test_import_brainuad_stays_light():
    code = "import sys, brainuad; print('torch' in sys.modules, callable(brainuad.load_detector))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]


def test_load_detector_predicts_in_the_scans_geometry(trained_ddpm_run, preprocessed_scans):
    from brainuad import load_detector

    detector = load_detector(trained_ddpm_run, threshold=0.2)
    scan = preprocessed_scans.reoriented
    image, affine = read_image(scan.image)
    result = detector.predict(str(scan.image))
    assert isinstance(result, PredictionResult) and result.name == "reoriented_t2"
    for array in (result.anomaly_map, result.binary_mask, result.reconstruction, result.brain_mask):
        assert array.shape == image.shape
    assert result.anomaly_map.dtype == np.float32 and result.binary_mask.dtype == bool
    np.testing.assert_allclose(result.affine, affine)
    assert np.array_equal(result.brain_mask, scan.brain)
    assert result.mask_source.startswith("found beside the scan") and result.threshold.value == 0.2
    # the same scan in memory, reconstructed only: the same (seeded) reconstruction
    volume = Volume(image, affine, mask=scan.brain, name="in-memory")
    np.testing.assert_array_equal(detector.reconstruct(volume), result.reconstruction)


def test_load_detector_refuses_without_a_threshold(trained_ddpm_run):
    from brainuad import load_detector

    with pytest.raises(InputError, match="no threshold stored"):
        load_detector(trained_ddpm_run)
