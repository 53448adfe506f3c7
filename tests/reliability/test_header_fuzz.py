"""Fuzzing the image loader's headers: any header either loads as a valid 3-D volume or is refused
with an :class:`~brainuad.errors.InputError` naming the file, never another exception."""

import io
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brainuad.data.io import read_image
from brainuad.data.volume import Volume
from brainuad.errors import InputError

SHAPE = (6, 5, 4)
HEADER_BYTES = 348
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid_bytes() -> bytes:
    array = np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)
    image = nib.Nifti1Image(array, np.diag([1.0, 1.0, 1.0, 1.0]))
    image.header.set_data_dtype(np.float32)
    return image.to_bytes()


VALID = _valid_bytes()


def _check(path: Path) -> None:
    try:
        array, affine = read_image(path)
    except InputError as error:
        assert error.path == path and str(error).startswith(str(path))
        return
    assert array.ndim == 3 and array.dtype == np.float32 and np.isfinite(array).all()
    assert affine.shape == (4, 4) and np.isfinite(affine).all() and abs(np.linalg.det(affine[:3, :3])) > 0


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, HEADER_BYTES - 1), st.integers(0, 255)), min_size=1, max_size=12))
def test_random_header_bytes(tmp_path_factory, edits):
    data = bytearray(VALID)
    for position, value in edits:
        data[position] = value
    path = tmp_path_factory.mktemp("fuzz") / "scan.nii"
    path.write_bytes(bytes(data))
    _check(path)


FIELDS = {
    "dim": st.lists(st.integers(-2, 40), min_size=8, max_size=8),
    "pixdim": st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.just(0.0)),
                       min_size=8, max_size=8),
    "datatype": st.sampled_from([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048,
                                 2304, 77]),
    "bitpix": st.integers(-8, 256),
    "vox_offset": st.one_of(st.floats(-10, 1e6, width=32), st.just(float("nan"))),
    "scl_slope": st.floats(allow_nan=True, allow_infinity=True, width=32),
    "scl_inter": st.floats(allow_nan=True, allow_infinity=True, width=32),
    "qform_code": st.integers(-1, 5),
    "sform_code": st.integers(-1, 5),
    "quatern_b": st.floats(-2, 2, width=32),
    "quatern_c": st.floats(-2, 2, width=32),
    "quatern_d": st.floats(allow_nan=True, allow_infinity=True, width=32),
    "srow_x": st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=4, max_size=4),
    "srow_z": st.lists(st.just(0.0), min_size=4, max_size=4),
}


@FUZZ
@given(values=st.dictionaries(st.sampled_from(sorted(FIELDS)), st.none(), min_size=1, max_size=5).flatmap(
    lambda chosen: st.fixed_dictionaries({name: FIELDS[name] for name in chosen})))
def test_header_fields(tmp_path_factory, values):
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(VALID))
    for name, value in values.items():
        header[name] = value
    data = bytearray(VALID)
    data[:HEADER_BYTES] = header.binaryblock
    path = tmp_path_factory.mktemp("fuzz") / "scan.nii"
    path.write_bytes(bytes(data))
    _check(path)


@pytest.mark.parametrize("field, value", [("dim", [3, 30000, 30000, 30000, 1, 1, 1, 1]),
                                          ("datatype", 2048), ("vox_offset", 1e9)])
def test_known_bad_headers_are_refused_with_the_file_named(tmp_path, field, value):
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(VALID))
    header[field] = value
    path = tmp_path / "scan.nii"
    path.write_bytes(header.binaryblock + VALID[HEADER_BYTES:])
    with pytest.raises(InputError, match="scan.nii"):
        Volume.load(path)
