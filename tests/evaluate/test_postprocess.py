import numpy as np
import pytest
import torch
from scipy import ndimage

from brainuad.evaluate.postprocess import PostProcessing, postprocess_maps


def _case(shape=(20, 22, 12), seed=0):
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    brain = (x / 0.95) ** 2 + (y / 1.05) ** 2 + (z / 1.2) ** 2 < 1  # touches the grid border
    residual = rng.gamma(2.0, 0.05, shape).astype(np.float32)
    return residual, brain


def _eroded_slicewise(brain, iterations=3):
    cross = ndimage.generate_binary_structure(2, 1)
    return np.stack([ndimage.binary_erosion(brain[:, :, k], cross, iterations=iterations)
                     for k in range(brain.shape[2])], axis=2)


def test_erosion_is_per_axial_slice_with_a_cross():
    _, brain = _case()
    assert np.array_equal(PostProcessing().region(brain), _eroded_slicewise(brain))
    assert np.array_equal(PostProcessing(erosion=False).region(brain), brain)


@pytest.mark.parametrize("seed", [0, 1])
def test_paper_order_equals_full_grid_scipy_median_then_mask(seed):
    residual, brain = _case(seed=seed)
    out = PostProcessing(order="paper").apply_to_residual(residual, brain)
    expected = ndimage.median_filter(residual, size=5, mode="reflect") * _eroded_slicewise(brain)
    assert out.dtype == residual.dtype
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("seed", [0, 1])
def test_authors_order_equals_mask_then_full_grid_scipy_median(seed):
    residual, brain = _case(seed=seed)
    out = PostProcessing(order="authors_code").apply_to_residual(residual, brain)
    expected = ndimage.median_filter(residual * _eroded_slicewise(brain), size=5, mode="reflect")
    assert np.array_equal(out, expected)
    # the two orders differ near the brain edge
    assert not np.array_equal(out, PostProcessing(order="paper").apply_to_residual(residual, brain))


def test_switches_and_median_size():
    residual, brain = _case()
    eroded = _eroded_slicewise(brain)
    assert np.array_equal(PostProcessing(median=False).apply_to_residual(residual, brain), residual * eroded)
    out = PostProcessing(erosion=False).apply_to_residual(residual, brain)
    assert np.array_equal(out, ndimage.median_filter(residual, size=5) * brain)
    out = PostProcessing(median_size=3, erosion_iterations=1).apply_to_residual(residual, brain)
    assert np.array_equal(out, ndimage.median_filter(residual, size=3) * _eroded_slicewise(brain, 1))


@pytest.mark.parametrize("order", ["paper", "authors_code"])
@pytest.mark.parametrize("median,erosion", [(True, True), (False, True), (True, False)])
def test_torch_batch_equals_numpy(order, median, erosion):
    cases = [_case(seed=s) for s in (0, 1, 2)]
    post = PostProcessing(order=order, median=median, erosion=erosion)
    residual = torch.from_numpy(np.stack([c[0] for c in cases]))
    brain = torch.from_numpy(np.stack([c[1] for c in cases]))
    out = post.apply_to_residual_batch(residual, brain)
    for k, (r, b) in enumerate(cases):
        assert np.array_equal(out[k].numpy(), post.apply_to_residual(r, b))


def _blobs():
    binary = np.zeros((20, 20, 20), dtype=bool)
    binary[1, 1, 1:8] = True  # 7 voxels in a line
    binary[10, 10, 10:16] = True  # 6 voxels
    for k in range(8):  # 8 voxels touching only by corners: one 26-connected component
        binary[5 + k, 12 + k, 5 + k] = True
    return binary


def test_component_rules_against_scipy_label():
    binary = _blobs()
    labelled, count = ndimage.label(binary, structure=np.ones((3, 3, 3)))
    assert count == 3
    kept = PostProcessing(component_rule="smaller_than").apply_to_binary(binary)
    assert kept[1, 1, 1:8].all() and not kept[10, 10].any() and kept[5, 12, 5]
    removed = PostProcessing(component_rule="at_most").apply_to_binary(binary)
    assert not removed[1, 1].any() and not removed[10, 10].any() and removed[5:13, 12:20, 5:13].sum() == 8
    assert np.array_equal(PostProcessing(components=False).apply_to_binary(binary), binary)


@pytest.mark.parametrize("kwargs", [
    {"median_size": 4}, {"median_size": 0}, {"erosion_iterations": 0}, {"order": "median_first"},
    {"min_component_size": 0}, {"component_rule": "below"},
])
def test_invalid_configuration(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        PostProcessing(**kwargs)


def test_invalid_inputs():
    residual, brain = _case()
    post = PostProcessing()
    with pytest.raises(ValueError, match="shape mismatch"):
        post.apply_to_residual(residual, brain[:-1])
    with pytest.raises(ValueError, match="boolean"):
        post.apply_to_residual(residual, brain.astype(np.uint8))
    bad = residual.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        post.apply_to_residual(bad, brain)
    with pytest.raises(ValueError, match="empty"):
        post.apply_to_residual(np.zeros((0, 4, 4), np.float32), np.zeros((0, 4, 4), bool))
    with pytest.raises(ValueError, match="floating"):
        post.apply_to_residual(brain.astype(np.int64), brain)
    with pytest.raises(ValueError, match="boolean"):
        post.apply_to_binary(brain.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(X, Y, Z\)"):
        post.apply_to_binary(brain[:, :, 0])
    with pytest.raises(ValueError, match=r"\(X, Y, Z\)"):
        post.region(brain[:, :, 0])


def test_invalid_batch_inputs():
    residual, brain = _case()
    r, b = torch.from_numpy(residual[None]), torch.from_numpy(brain[None])
    post = PostProcessing()
    with pytest.raises(ValueError, match="floating"):
        post.apply_to_residual_batch(r[0], b[0])
    with pytest.raises(ValueError, match="boolean"):
        post.apply_to_residual_batch(r, b.float())
    with pytest.raises(ValueError, match="mismatch"):
        post.apply_to_residual_batch(r, b[:, :-1])
    with pytest.raises(ValueError, match="NaN"):
        post.apply_to_residual_batch(r * float("nan"), b)
    with pytest.raises(ValueError, match="empty"):
        post.apply_to_residual_batch(r[:0], b[:0])
    with pytest.raises(ValueError, match="median_size"):
        post.apply_to_residual_batch(r[..., :1], b[..., :1])


def _maps_and_masks(count):
    rng = np.random.default_rng(5)
    masks = [np.zeros((24, 20, 12), dtype=bool) for _ in range(count)]
    for index, mask in enumerate(masks):
        mask[3 + index:20, 2:18, 1:11] = True
    return [rng.random((24, 20, 12)).astype(np.float32) for _ in range(count)], masks


def test_postprocess_maps_gives_every_map_after_every_postprocessing():
    residuals, masks = _maps_and_masks(3)
    choices = [PostProcessing(), PostProcessing(order="authors_code"), PostProcessing(median=False)]
    out = postprocess_maps(choices, residuals, masks, "cpu")
    assert len(out) == 3 and all(list(maps) == choices for maps in out)
    for maps, residual, mask in zip(out, residuals, masks):
        for post in choices:
            assert np.array_equal(maps[post], post.apply_to_residual(residual, mask))
    assert postprocess_maps([], residuals, masks) == [{}, {}, {}]
    with pytest.raises(ValueError, match="3 residual maps but 2 brain masks"):
        postprocess_maps(choices, residuals, masks[:2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_postprocess_maps_on_a_gpu_equal_the_cpu():
    residuals, masks = _maps_and_masks(4)
    choices = [PostProcessing(), PostProcessing(order="authors_code")]
    on_gpu = postprocess_maps(choices, residuals, masks, "cuda")
    on_cpu = postprocess_maps(choices, residuals, masks, "cpu")
    for gpu_maps, cpu_maps in zip(on_gpu, on_cpu):
        for post in choices:
            assert np.array_equal(gpu_maps[post], cpu_maps[post])
