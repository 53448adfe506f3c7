import itertools

import numpy as np
import pytest

from brainuad.evaluate.statistics import mean_std, paired_permutation_test, unpaired_permutation_test


def test_paired_test_enumerates_all_sign_flips_of_three_pairs():
    first, second = [3.0, 5.0, 4.0], [2.0, 3.0, 1.0]  # differences 1, 2, 3: mean 2
    differences = np.subtract(first, second)
    flipped = [np.mean(differences * signs) for signs in itertools.product([1, -1], repeat=3)]
    assert sorted(flipped) == [-2, -4 / 3, -2 / 3, 0, 0, 2 / 3, 4 / 3, 2]
    greater = paired_permutation_test(first, second, alternative="greater")
    assert greater.difference == pytest.approx(2.0)
    assert greater.p_value == pytest.approx(1 / 8)  # only the identity reaches 2
    assert greater.exact and greater.paired and greater.n_first == greater.n_second == 3
    two_sided = paired_permutation_test(first, second)
    assert two_sided.p_value == pytest.approx(2 / 8)  # |mean| >= 2: all +, all -
    assert paired_permutation_test(first, second, alternative="less").p_value == pytest.approx(1.0)


def test_unpaired_test_enumerates_all_splits():
    first, second = [5.0, 6.0], [1.0, 2.0, 3.0]
    pooled = first + second
    observed = np.mean(first) - np.mean(second)
    null = []
    for chosen in itertools.combinations(range(5), 2):
        a = [pooled[i] for i in chosen]
        b = [pooled[i] for i in range(5) if i not in chosen]
        null.append(np.mean(a) - np.mean(b))
    expected = np.mean(np.array(null) >= observed - 1e-12)
    result = unpaired_permutation_test(first, second, alternative="greater")
    assert result.p_value == pytest.approx(expected) == pytest.approx(1 / 10)
    assert result.exact and not result.paired and (result.n_first, result.n_second) == (2, 3)


def test_randomised_test_is_seedable():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.5, 0.1, 30), rng.normal(0.45, 0.1, 30)
    first = paired_permutation_test(a, b, seed=7)
    assert not first.exact and first.n_permutations == 10_000
    assert first == paired_permutation_test(a, b, seed=7)
    assert 0 < first.p_value < 1


def test_mean_std_sample_std_nan_exclusion_and_format():
    values = [0.5337 + 0.0149, 0.5337 - 0.0149, float("nan")]
    summary = mean_std(values)
    assert summary.mean == pytest.approx(0.5337)
    assert summary.std == pytest.approx(np.std([0.5486, 0.5188], ddof=1))
    assert (summary.n, summary.n_excluded, summary.ddof) == (2, 1, 1)
    assert mean_std([1.0, 2.0, 3.0]).format() == "2.00 ± 1.00"
    assert mean_std([0.5337, 0.5337]).format(scale=100) == "53.37 ± 0.00"
    assert np.isnan(mean_std([1.0]).std) and np.isnan(mean_std([float("nan")]).mean)
    assert mean_std([1.0, 3.0], ddof=0).std == pytest.approx(1.0)


def test_invalid_inputs():
    with pytest.raises(ValueError, match="one length"):
        paired_permutation_test([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="first"):
        paired_permutation_test([], [])
    with pytest.raises(ValueError, match="NaN"):
        unpaired_permutation_test([1.0, np.nan], [1.0])
    with pytest.raises(ValueError, match="alternative"):
        unpaired_permutation_test([1.0, 2.0], [1.0], alternative="bigger")
    with pytest.raises(ValueError, match="n_permutations"):
        unpaired_permutation_test([1.0, 2.0], [1.0], n_permutations=0)
    with pytest.raises(ValueError, match="one-dimensional"):
        mean_std(np.ones((2, 2)))
    with pytest.raises(ValueError, match="ddof"):
        mean_std([1.0], ddof=-1)
    with pytest.raises(ValueError, match="infinite"):
        mean_std([1.0, np.inf])
    with pytest.raises(ValueError, match="decimals"):
        mean_std([1.0, 2.0]).format(decimals=-1)
