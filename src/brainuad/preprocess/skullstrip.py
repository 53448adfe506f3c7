"""Skull stripping strategies (method.md §2, step 3): each finds the brain mask of an image.

* :class:`DeepBet` (default): the deepbet network (Fisch et al. 2024), whose weights ship inside its
  wheel, so it runs offline; on the GPU when torch sees one, else on the CPU (a few seconds).
* :class:`NoStrip` (``none``): the scan is already skull-stripped (BraTS); the brain is its non-zero
  region (largest connected body, holes filled).
* :class:`AtlasMask` (``atlas-mask``): the atlas's brain mask carried through the registration onto
  the scan; needs the registration step and is only as good as an affine fit of the head.
* :class:`HdBet` (``hd-bet``): the paper's HD-BET, when the user has installed its ``hd-bet``
  command (version 2) on the PATH. It is never a dependency of brainuad (it downloads its weights
  at run time and its package pulls a CUDA build of torch).

Every strategy takes the image on the scan's own grid resampled to 1 mm, before the registration
(a brain registers to the brain template far better than a head does), and returns a bool mask of
the same shape; only the atlas-mask fallback comes after a registration of the whole head.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np
from scipy import ndimage

from brainuad.checks import check_fraction
from brainuad.errors import BrainUADError
from brainuad.preprocess.resample import Grid


class SkullStripper(Protocol):
    """What the pipeline needs of a skull-stripping strategy.

    Attributes:
        name: its name in records and on the command line.
        needs_atlas_mask: True when it is given the atlas brain mask, which requires registering
            the whole head first; the others strip the scan on its own grid, before the
            registration, which then registers the brain alone.
    """

    name: ClassVar[str]
    needs_atlas_mask: ClassVar[bool]

    def brain_mask(self, image: np.ndarray, grid: Grid, atlas_mask: np.ndarray | None) -> np.ndarray:
        """(I, J, K) bool brain mask of ``image`` (I, J, K) on ``grid``.

        ``atlas_mask`` is the atlas brain mask carried onto ``grid`` through the registration for a
        strategy that needs it, else None.
        """
        ...


class SkullStripError(BrainUADError):
    """A skull stripper could not run or found no brain."""


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 6-connected body of ``mask`` (I, J, K) bool, with its internal holes filled."""
    labels, count = ndimage.label(mask)
    if count == 0:
        return np.zeros_like(mask, dtype=bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return ndimage.binary_fill_holes(labels == int(np.argmax(sizes)))


@dataclass(frozen=True)
class DeepBet:
    """Skull stripping with deepbet.

    Attributes:
        threshold: probability above which a voxel is brain (deepbet's default 0.5), in (0, 1).
        use_gpu: run on a GPU (CUDA or Apple MPS) when torch finds one.
    """

    threshold: float = 0.5
    use_gpu: bool = True
    name: ClassVar[str] = "deepbet"
    needs_atlas_mask: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_fraction("DeepBet: threshold", self.threshold, open_low=True, open_high=True)

    def brain_mask(self, image: np.ndarray, grid: Grid, atlas_mask: np.ndarray | None) -> np.ndarray:
        import nibabel as nib

        if not np.any(image > 0):
            raise SkullStripError("deepbet: the image is empty (no voxel above 0)")
        model = _deepbet_model(self.use_gpu)
        try:
            _, mask, _ = model.run(nib.Nifti1Image(np.asarray(image, dtype=np.float32), grid.affine),
                                   threshold=self.threshold)
        except AssertionError as error:  # deepbet asserts when it finds no head at all
            raise SkullStripError(f"deepbet found no brain in the image ({error})") from error
        found = np.asarray(mask.dataobj) > 0
        if not found.any():
            raise SkullStripError("deepbet found no brain in the image")
        return found


@functools.lru_cache(maxsize=2)
def _deepbet_model(use_gpu: bool):
    """deepbet's network, loaded once per process."""
    import warnings

    try:
        from deepbet import BrainExtraction
    except ImportError as error:
        raise SkullStripError("deepbet is not installed (pip install deepbet); or choose another skull stripper: "
                              "none, atlas-mask, hd-bet") from error
    with warnings.catch_warnings():  # deepbet loads TorchScript files, which torch now calls deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        return BrainExtraction(no_gpu=not use_gpu)


@dataclass(frozen=True)
class NoStrip:
    """No skull stripping: the scan is already stripped, the brain is where it is non-zero.

    Attributes:
        relative_threshold: voxels above this fraction of the image's 99th percentile (of its
            positive voxels) are brain before the largest body is kept and its holes filled; it
            ignores the faint values interpolation leaves in the background.
    """

    relative_threshold: float = 0.01
    name: ClassVar[str] = "none"
    needs_atlas_mask: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_fraction("NoStrip: relative_threshold", self.relative_threshold, open_high=True)

    def brain_mask(self, image: np.ndarray, grid: Grid, atlas_mask: np.ndarray | None) -> np.ndarray:
        positive = image[image > 0]
        if positive.size == 0:
            raise SkullStripError("the image has no voxel above 0, so it holds no brain")
        return largest_component(image > self.relative_threshold * float(np.percentile(positive, 99)))


@dataclass(frozen=True)
class AtlasMask:
    """The atlas brain mask, carried through the registration onto the scan."""

    name: ClassVar[str] = "atlas-mask"
    needs_atlas_mask: ClassVar[bool] = True

    def brain_mask(self, image: np.ndarray, grid: Grid, atlas_mask: np.ndarray | None) -> np.ndarray:
        if atlas_mask is None:
            raise ValueError("AtlasMask: the atlas-mask skull stripper needs the registration step (it was off)")
        if atlas_mask.shape != image.shape:
            raise ValueError(f"AtlasMask: atlas_mask shape {atlas_mask.shape} differs from the image's {image.shape}")
        return np.asarray(atlas_mask, dtype=bool)


@dataclass(frozen=True)
class HdBet:
    """HD-BET (version 2) run through its ``hd-bet`` command, if the user installed it.

    Attributes:
        executable: the command's name or path.
        device: ``cpu``, ``cuda`` or ``mps``; on the CPU test-time augmentation is turned off.
    """

    executable: str = "hd-bet"
    device: str = "cpu"
    name: ClassVar[str] = "hd-bet"
    needs_atlas_mask: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda", "mps") and not self.device.startswith("cuda:"):
            raise ValueError(f"HdBet: device must be cpu, cuda, cuda:N or mps, got {self.device!r}")

    def command(self) -> str:
        """The full path of the ``hd-bet`` command.

        Raises:
            SkullStripError: it is not on the PATH.
        """
        found = shutil.which(self.executable)
        if found is None:
            raise SkullStripError(f"the {self.executable!r} command was not found on the PATH; install HD-BET "
                                  f"yourself (pip install hd-bet, in its own environment) or choose deepbet")
        return found

    def brain_mask(self, image: np.ndarray, grid: Grid, atlas_mask: np.ndarray | None) -> np.ndarray:
        from brainuad.data.io import read_image, write_image

        command = self.command()
        with tempfile.TemporaryDirectory(prefix="brainuad-hdbet-") as folder:
            source, target = Path(folder) / "scan.nii.gz", Path(folder) / "brain.nii.gz"
            write_image(source, np.asarray(image, dtype=np.float32), grid.affine)
            arguments = [command, "-i", str(source), "-o", str(target), "-device", self.device,
                         "--save_bet_mask", "--no_bet_image"]
            if self.device == "cpu":
                arguments.append("--disable_tta")
            run = subprocess.run(arguments, capture_output=True, text=True)
            mask_path = Path(folder) / "brain_bet.nii.gz"
            if run.returncode != 0 or not mask_path.is_file():
                tail = (run.stderr or run.stdout).strip().splitlines()[-3:]
                raise SkullStripError(f"hd-bet failed (exit code {run.returncode}): {' | '.join(tail)}")
            mask, _ = read_image(mask_path)
        if mask.shape != image.shape:
            raise SkullStripError(f"hd-bet returned a mask of shape {mask.shape} for an image of shape {image.shape}")
        return mask > 0.5


SKULL_STRIPPERS: dict[str, type] = {"deepbet": DeepBet, "none": NoStrip, "atlas-mask": AtlasMask, "hd-bet": HdBet}
"""Name -> strategy class (each built with its defaults by :func:`skull_stripper`)."""


def skull_stripper(name: str) -> SkullStripper:
    """The strategy called ``name`` (deepbet, none, atlas-mask, hd-bet) with its default settings."""
    if name not in SKULL_STRIPPERS:
        raise ValueError(f"skull stripper must be one of {', '.join(SKULL_STRIPPERS)}, got {name!r}")
    return SKULL_STRIPPERS[name]()
