"""Reading and writing medical images with their geometry.

Arrays are indexed (i, j, k) in voxel order as stored on disk, and every image carries a 4x4
voxel-to-world affine in RAS+ millimetres (the NIfTI convention, as nibabel reports it). NIfTI
(.nii, .nii.gz) is read with nibabel; NRRD and MetaImage (.nrrd, .nhdr, .mha, .mhd) with
SimpleITK, whose LPS direction cosines are converted to the same RAS+ affine. Writing keeps the
affine, so an output overlays its input in ITK-SNAP, 3D Slicer or FSLeyes. Files are written to a
temporary name in the target folder and renamed, so nothing is ever left half-written.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.spatialimages import SpatialImage

from brainuad.atomic import atomic_path
from brainuad.errors import InputError

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
IMAGE_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def image_suffix(path: str | Path) -> str:
    """The image-format suffix of ``path`` (``.nii.gz`` counts as one suffix), lower case.

    Raises:
        InputError: the name ends in no suffix brainuad reads.
    """
    name = Path(path).name.lower()
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    raise InputError(path, "not a supported image file", f"use one of {', '.join(IMAGE_SUFFIXES)}")


def image_stem(path: str | Path) -> str:
    """The file name without its image suffix: ``sub-01_t1.nii.gz`` -> ``sub-01_t1``."""
    name = Path(path).name
    return name[: len(name) - len(image_suffix(path))]


def is_image_file(path: str | Path) -> bool:
    """True when ``path`` names a file whose suffix brainuad reads."""
    try:
        image_suffix(path)
    except InputError:
        return False
    return Path(path).is_file()


def read_image(path: str | Path, *, dtype: np.dtype | type = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Read a 3-D image and its voxel-to-world affine.

    Args:
        path: a .nii, .nii.gz, .nrrd, .nhdr, .mha or .mhd file.
        dtype: the array's dtype after reading (default float32).

    Returns:
        ``(array, affine)``: array of shape (I, J, K) and a (4, 4) float64 RAS+ affine in mm.
        A 4-D image with a single volume (I, J, K, 1) is squeezed to 3-D.

    Raises:
        InputError: the file is missing, unreadable or truncated, not 3-D, not of a real scalar voxel
            type (complex, RGB), or holds NaN/inf voxels, or its affine is singular.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if not path.is_file():
        raise InputError(path, "not a file")
    suffix = image_suffix(path)
    try:
        if suffix in NIFTI_SUFFIXES:
            image = nib.load(str(path))
            if not isinstance(image, SpatialImage):
                raise TypeError(f"nibabel read a {type(image).__name__}, not a spatial image")
            array = np.asanyarray(image.dataobj)
            affine = np.asarray(image.affine, dtype=np.float64)
        else:
            array, affine = _read_with_sitk(path)
    except InputError:
        raise
    except Exception as error:  # nibabel/SimpleITK/zlib raise many types for broken files
        raise InputError(path, f"cannot be read ({type(error).__name__}: {error})",
                         "the file is corrupt or truncated; re-export or re-download it") from error
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise InputError(path, f"expected a 3-D image, found {array.ndim}-D with shape {tuple(array.shape)}",
                         "give one volume per file")
    if array.dtype.kind == "c":
        raise InputError(path, f"has complex voxels ({array.dtype})", "give a real-valued (magnitude) image")
    if array.dtype.kind not in "buif":
        raise InputError(path, f"voxel type {array.dtype} is not a scalar voxel type (e.g. RGB)",
                         "give a single-channel grey-value image")
    array = np.asarray(array, dtype=dtype)
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise InputError(path, f"contains {bad} NaN or infinite voxels", "fix or re-export the image")
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError(path, "has an invalid (singular or non-finite) affine in its header")
    return array, affine


def _read_with_sitk(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    # GetArrayFromImage gives (k, j, i); transpose back to voxel order (i, j, k).
    array = sitk.GetArrayFromImage(image)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(path, "is a multi-component (vector) image", "give a scalar 3-D image")
    array = np.transpose(array, tuple(reversed(range(array.ndim))))
    if image.GetDimension() != 3:
        raise InputError(path, f"expected a 3-D image, found {image.GetDimension()}-D")
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    origin = np.asarray(image.GetOrigin(), dtype=np.float64)
    affine_lps = np.eye(4)
    affine_lps[:3, :3] = direction * spacing[None, :]
    affine_lps[:3, 3] = origin
    return array, _LPS_TO_RAS @ affine_lps


def write_image(path: str | Path, array: np.ndarray, affine: np.ndarray) -> Path:
    """Write a 3-D image with its affine, atomically (temporary name, then rename).

    Args:
        path: target file; its suffix picks the format (.nii.gz recommended).
        array: (I, J, K) voxels; bool arrays are stored as uint8.
        affine: (4, 4) RAS+ voxel-to-world affine in mm, usually the input's own.

    Returns:
        The written path.
    """
    path = Path(path)
    array = np.asarray(array)
    affine = np.asarray(affine, dtype=np.float64)
    if array.ndim != 3:
        raise ValueError(f"write_image: array must be 3-D, got shape {array.shape} for {path}")
    if affine.shape != (4, 4):
        raise ValueError(f"write_image: affine must be 4x4, got shape {affine.shape} for {path}")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    suffix = image_suffix(path)
    with atomic_path(path, suffix) as temporary:
        if suffix in NIFTI_SUFFIXES:
            image = nib.Nifti1Image(array, affine)
            image.set_qform(affine, code=1)
            image.set_sform(affine, code=1)
            nib.save(image, str(temporary))
        else:
            _write_with_sitk(temporary, array, affine)
    return path


def _write_with_sitk(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    import SimpleITK as sitk

    affine_lps = _LPS_TO_RAS @ affine
    spacing = np.linalg.norm(affine_lps[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.transpose(array, (2, 1, 0)))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(v) for v in (affine_lps[:3, :3] / spacing[None, :]).ravel()))
    image.SetOrigin(tuple(float(v) for v in affine_lps[:3, 3]))
    sitk.WriteImage(image, str(path), True)


def voxel_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size in mm along each array axis, from a (4, 4) affine."""
    x, y, z = (float(s) for s in np.linalg.norm(np.asarray(affine)[:3, :3], axis=0))
    return x, y, z
