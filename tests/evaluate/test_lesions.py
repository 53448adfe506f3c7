"""Lesion-level detection against a brute-force count on random label maps."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from brainuad.evaluate.lesions import LESION_SIZE_BINS_ML, LesionMap, lesion_detection


def _components(mask: np.ndarray) -> list[set[tuple[int, int, int]]]:
    """26-connected components by flood fill, one voxel at a time."""
    left = {tuple(int(i) for i in index) for index in np.argwhere(mask)}
    components = []
    offsets = [o for o in itertools.product((-1, 0, 1), repeat=3) if o != (0, 0, 0)]
    while left:
        seed = left.pop()
        component, frontier = {seed}, [seed]
        while frontier:
            x, y, z = frontier.pop()
            for dx, dy, dz in offsets:
                neighbour = (x + dx, y + dy, z + dz)
                if neighbour in left:
                    left.remove(neighbour)
                    component.add(neighbour)
                    frontier.append(neighbour)
        components.append(component)
    return components


def _brute(prediction, target, min_overlap):
    predicted = {tuple(int(i) for i in index) for index in np.argwhere(prediction)}
    truth = {tuple(int(i) for i in index) for index in np.argwhere(target)}
    lesions = _components(target)
    detected = sorted((len(lesion), len(lesion & predicted) > min_overlap * len(lesion) if min_overlap
                       else bool(lesion & predicted)) for lesion in lesions)
    false_positives = sum(1 for component in _components(prediction) if not component & truth)
    return detected, false_positives


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("min_overlap", [0.0, 0.5])
def test_counts_equal_brute_force(seed, min_overlap):
    rng = np.random.default_rng(seed)
    target = rng.random((9, 8, 7)) < 0.08
    prediction = rng.random((9, 8, 7)) < 0.1
    prediction |= target & (rng.random(target.shape) < 0.5)
    result = lesion_detection(prediction, target, voxel_volume_ml=1.0, min_overlap=min_overlap)
    detected, false_positives = _brute(prediction, target, min_overlap)
    assert sorted(zip(result.sizes_ml.astype(int).tolist(), result.detected.tolist())) == detected
    assert result.false_positives == false_positives
    tp, lesions = sum(found for _, found in detected), len(detected)
    assert result.recall == pytest.approx(tp / lesions)
    assert result.f1 == pytest.approx(2 * tp / (2 * tp + false_positives + lesions - tp))


def test_two_lesions_one_found_one_false_positive():
    target = np.zeros((10, 10, 10), bool)
    target[1:3, 1:3, 1:3] = True  # 8 voxels
    target[6:9, 6:9, 6:9] = True  # 27 voxels, not touching the first
    prediction = np.zeros_like(target)
    prediction[2, 2, 2] = True  # one voxel of the small lesion
    prediction[0, 9, 9] = True  # far from both
    result = lesion_detection(prediction, target, voxel_volume_ml=0.5)
    assert result.lesions == 2 and result.true_positives == 1 and result.false_positives == 1
    np.testing.assert_allclose(sorted(result.sizes_ml), [4.0, 13.5])
    assert result.recall == 0.5 and result.f1 == pytest.approx(2 / 4)
    assert lesion_detection(prediction, target, min_overlap=0.5).true_positives == 0
    assert result.recall_by_size((0.0, 5.0, 20.0)) == ((1, 1), (0, 1))
    lesions = LesionMap(target, voxel_volume_ml=0.5)  # one labelling, several predictions
    assert lesions.detect(prediction).true_positives == 1 and lesions.detect(target).true_positives == 2


def test_empty_cases():
    empty = np.zeros((4, 4, 4), bool)
    none = lesion_detection(empty, empty)
    assert none.lesions == 0 and np.isnan(none.recall) and np.isnan(none.f1)
    spot = empty.copy()
    spot[1, 1, 1] = True
    only_false = lesion_detection(spot, empty)
    assert only_false.false_positives == 1 and only_false.f1 == 0.0
    assert lesion_detection(empty, spot).recall == 0.0
    assert len(none.recall_by_size()) == len(LESION_SIZE_BINS_ML) - 1


def test_bad_arguments():
    mask = np.zeros((3, 3, 3), bool)
    with pytest.raises(ValueError, match="boolean"):
        lesion_detection(mask.astype(np.uint8), mask)
    with pytest.raises(ValueError, match="shape"):
        lesion_detection(mask, np.zeros((3, 3, 2), bool))
    with pytest.raises(ValueError, match="voxel_volume_ml"):
        lesion_detection(mask, mask, voxel_volume_ml=0)
    with pytest.raises(ValueError, match="min_overlap"):
        lesion_detection(mask, mask, min_overlap=1.0)
    with pytest.raises(ValueError, match="edges"):
        lesion_detection(mask, mask).recall_by_size((1.0, 0.5))
