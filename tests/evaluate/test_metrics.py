import numpy as np
import pytest
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

from brainuad.evaluate.metrics import (
    ConfusionCounts,
    ScoreHistogram,
    confusion_counts,
    ranking_scores,
    score_volume,
)


def _lesion_volume(rng, shape=(24, 24, 10)):
    """Brain ellipsoid, a spherical lesion with higher residuals, zero background."""
    x, y, z = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    brain = ((x - 12) / 11) ** 2 + ((y - 12) / 11) ** 2 + ((z - 5) / 6) ** 2 < 1
    centre = rng.integers(7, 17, 2)
    lesion = ((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - 5) ** 2 < rng.integers(4, 16)) & brain
    scores = np.where(brain, rng.gamma(2.0, 0.02, shape), 0.0)
    scores[lesion] += rng.gamma(4.0, 0.04, int(lesion.sum()))
    return scores.astype(np.float32), lesion, brain


@pytest.mark.parametrize("seed", range(4))
def test_ranking_scores_match_sklearn_random_and_tied(seed):
    rng = np.random.default_rng(seed)
    scores = rng.random(3000)
    labels = rng.random(3000) < 0.2
    tied = np.round(scores * 20) / 20  # many ties
    for s in (scores, tied, scores.astype(np.float32)):
        result = ranking_scores(s, labels)
        assert result.average_precision == pytest.approx(average_precision_score(labels, s), abs=1e-9)
        assert result.roc_auc == pytest.approx(roc_auc_score(labels, s), abs=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_ranking_scores_match_sklearn_on_volumes_with_background(seed):
    scores, lesion, _ = _lesion_volume(np.random.default_rng(seed))
    result = ranking_scores(scores, lesion)
    assert result.average_precision == pytest.approx(average_precision_score(lesion.ravel(), scores.ravel()), abs=1e-9)
    assert result.roc_auc == pytest.approx(roc_auc_score(lesion.ravel(), scores.ravel()), abs=1e-9)


def test_ranking_scores_single_class():
    scores = np.linspace(0, 1, 10)
    no_lesion = ranking_scores(scores, np.zeros(10, bool))
    assert np.isnan(no_lesion.average_precision) and np.isnan(no_lesion.roc_auc)
    all_lesion = ranking_scores(scores, np.ones(10, bool))
    assert all_lesion.average_precision == 1.0 and np.isnan(all_lesion.roc_auc)


def test_confusion_counts_named_against_sklearn():
    rng = np.random.default_rng(0)
    prediction, target = rng.random(500) < 0.3, rng.random(500) < 0.2
    tn, fp, fn, tp = confusion_matrix(target, prediction, labels=[False, True]).ravel()
    assert confusion_counts(prediction, target) == ConfusionCounts(tp=tp, fp=fp, fn=fn, tn=tn)


def test_dice_values_and_empty_rule():
    target = np.zeros((4, 4, 4), bool)
    prediction = np.zeros_like(target)
    assert np.isnan(confusion_counts(prediction, target).dice)  # both empty: excluded (nan)
    prediction[0, 0, :2] = True
    assert confusion_counts(prediction, target).dice == 0.0  # empty target, false positives: counted as 0
    target[0, 0, 1:4] = True
    assert confusion_counts(prediction, target).dice == pytest.approx(2 * 1 / (2 + 3))
    assert confusion_counts(np.zeros_like(target), target).dice == 0.0
    assert confusion_counts(target, target).dice == 1.0


def test_score_volume_combines_the_metrics():
    scores, lesion, _ = _lesion_volume(np.random.default_rng(5))
    prediction = scores > 0.15
    result = score_volume(prediction, lesion, scores)
    assert result.dice == confusion_counts(prediction, lesion).dice
    assert result.counts == confusion_counts(prediction, lesion)
    assert result.average_precision == ranking_scores(scores, lesion).average_precision


def test_histogram_ranking_error_below_1e4_on_realistic_volumes():
    rng = np.random.default_rng(1)
    histogram = ScoreHistogram()
    pooled_scores, pooled_labels = [], []
    for _ in range(6):
        scores, lesion, brain = _lesion_volume(rng)
        histogram.add(scores, lesion, mask=brain)
        pooled_scores.append(scores[brain])
        pooled_labels.append(lesion[brain])
    s, y = np.concatenate(pooled_scores), np.concatenate(pooled_labels)
    approx = histogram.ranking_scores()
    assert abs(approx.average_precision - average_precision_score(y, s)) < 1e-4
    assert abs(approx.roc_auc - roc_auc_score(y, s)) < 1e-4
    assert histogram.positives.sum() + histogram.negatives.sum() == s.size
    assert histogram.positives.shape == (2**20,) and histogram.n_clipped == 0


def test_histogram_clips_out_of_range_scores():
    histogram = ScoreHistogram(0.0, 1.0)
    histogram.add(np.array([-0.5, 0.5, 1.0, 2.0]), np.array([False, True, False, True]))
    assert histogram.n_clipped == 2
    assert histogram.negatives[0] == 1 and histogram.negatives[-1] == 1 and histogram.positives[-1] == 1


def test_invalid_inputs():
    scores = np.random.default_rng(0).random((4, 4))
    labels = scores > 0.5
    with pytest.raises(ValueError, match="shape mismatch"):
        ranking_scores(scores, labels[:3])
    with pytest.raises(ValueError, match="boolean"):
        ranking_scores(scores, labels.astype(int))
    with pytest.raises(ValueError, match="NaN"):
        ranking_scores(np.where(labels, np.nan, scores), labels)
    with pytest.raises(ValueError, match="empty"):
        ranking_scores(np.zeros(0), np.zeros(0, bool))
    with pytest.raises(ValueError, match="floating"):
        ranking_scores(labels.astype(int), labels)
    with pytest.raises(ValueError, match="shape mismatch"):
        confusion_counts(labels, labels[:2]).dice
    with pytest.raises(ValueError, match="boolean"):
        confusion_counts(scores, labels)
    with pytest.raises(ValueError, match="low < high"):
        ScoreHistogram(1.0, 0.0)
    with pytest.raises(ValueError, match="bins"):
        ScoreHistogram(bins=1000)
    with pytest.raises(ValueError, match="shape mismatch"):
        ScoreHistogram().add(scores, labels, mask=labels[:2])
