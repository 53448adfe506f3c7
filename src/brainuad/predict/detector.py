"""The detector: a trained method with its threshold, scoring scans and carrying the maps back into
each scan's own geometry (:class:`Detector`, :func:`load_detector`), with the types it returns
(:class:`PreparedScan`, :class:`GridMaps`, :class:`PredictionResult`) and the atlas of a run's
training data for raw scans (:func:`training_atlas`).

Inputs are taken as preprocessed (method.md §2 steps 1-4): 1 mm voxels, in the space the model was
trained in, skull stripped. For each scan a :class:`Detector`

1. finds its brain mask: the one given, else one beside the scan (:func:`find_mask`), else the
   scan's nonzero voxels (with a warning); for a multi-contrast model (``contrasts``), also the
   subject's other contrasts: the files given, else those beside the scan (:func:`find_contrast`:
   ``X_t1`` beside ``X_t2``), on the scan's voxel grid (raw ones are registered to the scan);
2. puts its voxels in the training data's axis order (RAS by default) -- an exact flip or
   permutation of axes read from the affine, no interpolation -- so axial slices lie along the
   last axis whatever order the file stores them in;
3. brings it onto the model grid (:func:`~brainuad.data.grid.to_model_grid`: centred 192 x 192 x 100
   box, downsampled to 96 x 96 x 50, intensities normalised to [0, 1] inside the brain);
4. scores it as the evaluation does (:func:`~brainuad.evaluate.scoring.volume_scorer`: the
   residual ``R = |x - x_rec|`` of a reconstruction method, else the method's own anomaly map),
   post-processes the map (median filter, eroded brain mask), binarises ``R > threshold`` and
   removes small connected components -- with the post-processing the threshold was chosen with
   (:class:`ThresholdChoice`);
5. carries the maps back (linear upsampling for continuous maps, nearest neighbour for the binary
   one; 0 outside the model's box; original axis order), so every output has the scan's shape and
   affine and overlays it in a viewer.

Raw scans (``--raw``; a :class:`Detector` given a ``preprocessing`` pipeline) go through the
preprocessing pipeline first (:class:`~brainuad.preprocess.pipeline.Pipeline`: 1 mm, registration to
the training data's atlas, skull stripping, N4, 192 x 192 x 160), and step 5 continues through the
pipeline's saved transforms back onto the raw scan's own voxel grid (:meth:`PreparedScan.to_input`).

Many scans (:meth:`Detector.predict_files`) share one loaded model; the next scan is read and
brought onto the grid in a background thread while the model reconstructs the current one.
Reconstructions are seeded per scan, so a scan's maps do not depend on the other scans.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from brainuad.data.grid import (
    CROP_SHAPE,
    NORMALISE_ON,
    GridVolume,
    NormaliseOn,
    to_model_grid,
)
from brainuad.data.io import image_stem
from brainuad.data.orientation import (
    TRAINING_ORIENTATION,
    Reorientation,
    check_orientation,
)
from brainuad.data.volume import Volume
from brainuad.errors import BrainUADError, InputError
from brainuad.evaluate.scoring import AnomalyScorer, Reconstructor, read_contrasts, volume_scorer
from brainuad.predict.inputs import find_contrast, find_mask, load_scan
from brainuad.predict.thresholds import ThresholdChoice, resolve_threshold
from brainuad.run_directory import load_run, read_run_config

if TYPE_CHECKING:
    from brainuad.preprocess.pipeline import Pipeline, PreprocessedScan
    from brainuad.preprocess.register import Atlas

__all__ = [
    "Detector",
    "GridMaps",
    "PredictionResult",
    "PreparedScan",
    "SPACING_TOLERANCE_MM",
    "ScanLike",
    "load_detector",
    "training_atlas",
]

SPACING_TOLERANCE_MM = 0.05
"""Largest deviation from 1 mm of a voxel edge before a scan is warned about."""


@dataclass(frozen=True)
class PreparedScan:
    """A scan on the model grid, with what is needed to carry maps back to its own geometry.

    Attributes:
        name: the scan's name (its file name without suffix) used for the outputs.
        source: the scan's file, or None for an in-memory volume.
        grid: the model-grid volume (96, 96, 50), in the training axis order.
        reorientation: from the preprocessed scan's voxel order to the training axis order and back.
        brain_mask: (I, J, K) bool brain mask used, on the scan's own voxel grid (the raw scan's for
            a raw scan).
        mask_source: which brain mask was used, in words.
        notes: facts about the prediction (field of view, preprocessing).
        warnings: what makes the prediction doubtful (voxel spacing, no brain mask found).
        preprocessed: for a raw scan, the pipeline's output with its transforms back to the raw
            scan; None for a scan taken as preprocessed.
    """

    name: str
    source: Path | None
    grid: GridVolume
    reorientation: Reorientation
    brain_mask: np.ndarray
    mask_source: str
    notes: tuple[str, ...]
    warnings: tuple[str, ...]
    preprocessed: "PreprocessedScan | None" = None

    @property
    def affine(self) -> np.ndarray:
        """(4, 4) voxel-to-world affine of the scan's own grid (the raw scan's for a raw scan)."""
        if self.preprocessed is not None:
            record = self.preprocessed.record
            return record.records[record.reference].raw.affine
        return self.reorientation.input_affine

    def to_input(self, grid_array: np.ndarray, *, label: bool) -> np.ndarray:
        """A (96, 96, 50) model-grid map on the scan's own (I, J, K) voxel grid (see
        :meth:`~brainuad.data.grid.GridTransform.to_input`), through the preprocessing's inverse
        transform for a raw scan (:meth:`~brainuad.preprocess.pipeline.PreprocessedScan.to_raw`:
        linear, or nearest neighbour for a label map, which stays binary)."""
        array = self.reorientation.revert(self.grid.to_input(grid_array, label=label))
        if self.preprocessed is None:
            return array
        raw = self.preprocessed.to_raw(array.astype(np.float32), interpolation="nearest" if label else "linear")
        return raw > 0.5 if label else raw


@dataclass(frozen=True)
class GridMaps:
    """One scan's maps on the model grid, (96, 96, 50) each, axial slices along the last axis.

    Attributes:
        image: the normalised input in [0, 1].
        reconstruction: the pseudo-healthy reconstruction in [0, 1], or None (a method without one).
        anomaly_map: the post-processed anomaly map (>= 0).
        binary_mask: the thresholded map after connected-component removal.
        brain_mask: the brain mask.
    """

    image: np.ndarray
    reconstruction: np.ndarray | None
    anomaly_map: np.ndarray
    binary_mask: np.ndarray
    brain_mask: np.ndarray


@dataclass(frozen=True)
class PredictionResult:
    """The maps of one scan, in the scan's own geometry.

    Every array has the scan's shape (I, J, K) and lies on its voxel grid: write it with
    ``affine`` and it overlays the scan. Voxels outside the model's centred 192 x 192 x 100 mm
    box are 0 in every map.

    Attributes:
        name: the scan's name (file name without suffix).
        source: the scan's file, or None for an in-memory volume.
        affine: (4, 4) the scan's voxel-to-world affine (RAS+ mm).
        anomaly_map: (I, J, K) float32 >= 0: the residual ``|x - x_rec|`` (or a map-only method's
            scores) after median filter and eroded brain mask, linearly upsampled from the 2 mm
            model grid.
        binary_mask: (I, J, K) bool: ``anomaly_map > threshold`` on the model grid, small
            connected components removed (nearest-neighbour upsampled).
        reconstruction: (I, J, K) float32 in [0, 1]: the pseudo-healthy scan on the normalised
            intensity scale of the model (1st/99th brain percentiles -> 0/1), not the scan's units;
            None for a method without reconstructions.
        brain_mask: (I, J, K) bool: the brain mask used.
        threshold: the threshold and post-processing used.
        mask_source: which brain mask was used, in words.
        notes, warnings: as :class:`PreparedScan`.
        grid: the same maps on the model grid (for figures).
    """

    name: str
    source: Path | None
    affine: np.ndarray
    anomaly_map: np.ndarray
    binary_mask: np.ndarray
    reconstruction: np.ndarray | None
    brain_mask: np.ndarray
    threshold: ThresholdChoice
    mask_source: str
    notes: tuple[str, ...]
    warnings: tuple[str, ...]
    grid: GridMaps

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres (cm^3)."""
        return abs(float(np.linalg.det(self.affine[:3, :3]))) / 1000.0

    @property
    def anomaly_volume_ml(self) -> float:
        """Volume of the binary mask in millilitres."""
        return float(np.count_nonzero(self.binary_mask)) * self.voxel_volume_ml


ScanLike = str | Path | Volume
ContrastFiles = Mapping[str, str | Path]
"""Other contrasts of a scan's subject by name (``{"t1": "sub-01_t1.nii.gz"}``)."""


class Detector:
    """A trained method with a threshold, predicting on preprocessed scans.

    Args:
        method: the trained method (e.g. from :func:`~brainuad.run_directory.load_run`), on any
            device: anything with ``anomaly_map(volume)``; with ``reconstruct(volume)`` its maps
            are residuals and reconstructions are written too.
        threshold: the threshold and its post-processing (:func:`resolve_threshold`).
        orientation: the axis order of the training data (``"RAS"``: the data pipeline's and the
            synthetic cohort's); scans are reoriented to it before the model sees them.
        name: the detector's name in messages (usually the run directory's name).
        preprocessing: a pipeline that brings raw scan files into the training data's space first
            (its atlas must be the one the training data was registered to); None: files are taken
            as preprocessed.
        normalise_on: where intensities are normalised, as the method was trained
            (:func:`~brainuad.data.grid.to_model_grid`; the run's ``data.normalise_on``).
    """

    def __init__(self, method: AnomalyScorer, threshold: ThresholdChoice, *,
                 orientation: str = TRAINING_ORIENTATION, name: str = "detector",
                 preprocessing: "Pipeline | None" = None, normalise_on: NormaliseOn = "model_grid") -> None:
        if not isinstance(method, AnomalyScorer):
            raise ValueError(f"method must offer anomaly_map(volume), got {type(method).__name__}")
        if not isinstance(threshold, ThresholdChoice):
            raise ValueError(f"threshold must be a ThresholdChoice, got {type(threshold).__name__}")
        self.method = method
        self.scorer = volume_scorer(method)
        self.threshold = threshold
        self.orientation = "".join(check_orientation(orientation))
        self.name = name
        self.preprocessing = preprocessing
        if normalise_on not in NORMALISE_ON:
            raise ValueError(f"normalise_on must be one of {', '.join(NORMALISE_ON)}, got {normalise_on!r}")
        self.normalise_on = normalise_on
        self.contrasts = read_contrasts(method)

    def __repr__(self) -> str:
        raw = "" if self.preprocessing is None else ", raw scans preprocessed"
        return (f"Detector({self.name!r}, {type(self.method).__name__}, threshold {self.threshold.value:.6g}: "
                f"{self.threshold.origin}{raw})")

    def prepare(self, scan: ScanLike, mask: str | Path | None = None,
                contrasts: ContrastFiles | None = None) -> PreparedScan:
        """Read a scan (if a path) and bring it onto the model grid (steps 1-3 of the module docstring).

        Args:
            scan: an image file, or a :class:`~brainuad.data.volume.Volume` (its own ``mask`` is
                used when it has one; always taken as preprocessed; not for a multi-contrast model).
            mask: a brain-mask file for an image file (default: :func:`find_mask`); for a raw scan
                it lies on the raw scan and replaces skull stripping.
            contrasts: for a multi-contrast model, the files of the other contrasts it reads
                (default: :func:`find_contrast` beside the scan); raw ones are registered to the scan.

        Raises:
            ValueError: a ``mask`` given with a Volume, or a Volume for a multi-contrast model.
            InputError: an unreadable or unusable scan, mask or contrast, or a contrast not found,
                naming the file.
            SkullStripError: the skull stripper found no brain in a raw scan.
        """
        preprocessed = None
        others: dict[str, np.ndarray] = {}
        if isinstance(scan, Volume):
            if mask is not None:
                raise ValueError(f"mask={mask!r} cannot be given with a Volume: set the Volume's mask instead")
            if self.contrasts:
                raise ValueError(f"the model reads each scan with its {', '.join(self.contrasts)} image: give the "
                                 "scan as a file, its other contrasts beside it or in contrasts=")
            volume, mask_source = scan, "the Volume's own mask" if scan.mask is not None else "none given"
            files: dict[str, Path] = {}
        else:
            files = self._contrast_files(Path(scan), contrasts)
            if self.preprocessing is not None:
                preprocessed, mask_source = self._preprocess(Path(scan), mask, files)
                volume = Volume(preprocessed.image, preprocessed.grid.affine, mask=preprocessed.mask,
                                name=preprocessed.record.subject, source=Path(scan))
                others = {name: preprocessed.images[name] for name in files}
            else:
                loaded = load_scan(scan, mask)
                volume, mask_source = loaded.volume, loaded.mask_source
                others = {name: volume.load_contrast(path, name) for name, path in files.items()}
        where = volume.source or Path(volume.name)
        warnings = []
        spacing = volume.spacing
        if any(abs(size - 1.0) > SPACING_TOLERANCE_MM for size in spacing):
            warnings.append(f"voxel spacing {' x '.join(f'{size:.3g}' for size in spacing)} mm is not 1 mm: the "
                            "model expects preprocessed 1 mm scans, so this prediction is unreliable")
        if volume.mask is None:
            brain = volume.image != 0
            if not brain.any():
                raise InputError(where, "has no nonzero voxel", "is the file empty?")
            warnings.append(f"no brain mask found: used the scan's {int(brain.sum())} nonzero voxels as the brain "
                            "(right only for a skull-stripped scan)")
            mask_source = "the scan's nonzero voxels"
            volume = volume.with_arrays(mask=brain)
        else:
            brain = volume.mask
        reorientation = Reorientation.to_axes(volume.shape, volume.affine, self.orientation)
        oriented_brain = reorientation.apply(brain)
        oriented = Volume(reorientation.apply(volume.image), reorientation.affine,
                          mask=oriented_brain, name=volume.name, source=volume.source)
        try:
            grid = to_model_grid(oriented, normalise_on=self.normalise_on,
                                 contrasts={name: reorientation.apply(array) for name, array in others.items()})
        except ValueError as error:
            raise InputError(where, str(error)) from None
        inside = int(grid.transform.crop(oriented_brain).sum())
        outside = 1.0 - inside / int(oriented_brain.sum())
        notes = [f"{outside:.0%} of the brain lies outside the model's centred "
                 f"{' x '.join(map(str, CROP_SHAPE))} mm box and scores 0"] if outside >= 0.005 else []
        notes += [f"read with its {name} image {path}" for name, path in files.items()]
        brain_mask = brain
        if preprocessed is not None:
            record = preprocessed.record
            notes.append(f"preprocessed: {', '.join(record.steps)} (atlas {record.atlas or 'none'}, skull strip "
                         f"{record.skull_strip}) in {sum(record.seconds.values()):.0f} s; maps carried back to the "
                         "raw scan's grid")
            brain_mask = preprocessed.to_raw(brain.astype(np.float32), interpolation="nearest") > 0.5
        return PreparedScan(volume.name, volume.source, grid, reorientation, brain_mask, mask_source, tuple(notes),
                            tuple(warnings), preprocessed)

    def _contrast_files(self, scan: Path, given: ContrastFiles | None) -> dict[str, Path]:
        """The files of the other contrasts the model reads for ``scan``: ``given``, else found beside it.

        Raises:
            ValueError: ``given`` names a contrast the model does not read.
            InputError: a contrast neither given nor found beside the scan.
        """
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.contrasts))
        if unknown:
            reads = ", ".join(self.contrasts) or "no other contrast"
            raise ValueError(f"the model reads {reads}; it cannot use the {', '.join(unknown)} image given")
        files = {}
        for name in self.contrasts:
            path = Path(given[name]) if name in given else find_contrast(scan, name)
            if path is None:
                raise InputError(scan, f"the model reads each scan with its {name} image, and none was found beside "
                                       f"it (looked for {image_stem(scan)}_{name}.*, <subject>_{name}.* and "
                                       f"../{name}/<subject>_{name}.*)",
                                 f"put the subject's {name} scan there, or give it with --contrast {name}=FILE")
            files[name] = path
        return files

    def _preprocess(self, path: Path, mask: str | Path | None,
                    contrasts: Mapping[str, Path]) -> "tuple[PreprocessedScan, str]":
        """Run the preprocessing pipeline on a raw scan file (and its brain mask, when one is given
        or found beside it, and its other ``contrasts``, registered to it rigidly); returns the
        result and which brain mask was used, in words."""
        from brainuad.preprocess.pipeline import OtherScan, ScanInputs

        if self.preprocessing is None:
            raise ValueError("this Detector has no preprocessing pipeline for raw scans")
        if mask is None:
            mask = find_mask(path)
            source = None if mask is None else f"found beside the scan: {mask}"
        else:
            source = f"given: {mask}"
        inputs = ScanInputs(name=image_stem(path), modality="scan", image=path,
                            mask=None if mask is None else Path(mask),
                            others=tuple(OtherScan(name, file, coregistered=False) for name, file in contrasts.items()))
        preprocessed = self.preprocessing.run(inputs)
        return preprocessed, source or f"skull stripping ({preprocessed.record.skull_strip})"

    def predict_prepared(self, scan: PreparedScan) -> PredictionResult:
        """Score a prepared scan, threshold its map and carry the maps back (steps 4-5 of the module
        docstring)."""
        grid = scan.grid
        scored = self.scorer.score(grid)
        postprocessing = self.threshold.postprocessing
        anomaly = postprocessing.apply_to_residual(scored.anomaly_map, grid.mask)
        binary = postprocessing.apply_to_binary(anomaly > self.threshold.value)
        reconstruction = scored.reconstruction
        return PredictionResult(
            name=scan.name, source=scan.source, affine=scan.affine,
            anomaly_map=scan.to_input(anomaly, label=False), binary_mask=scan.to_input(binary, label=True),
            reconstruction=None if reconstruction is None else np.clip(scan.to_input(reconstruction, label=False),
                                                                       0.0, 1.0),
            brain_mask=scan.brain_mask, threshold=self.threshold, mask_source=scan.mask_source, notes=scan.notes,
            warnings=scan.warnings, grid=GridMaps(grid.image, reconstruction, anomaly, binary, grid.mask))

    def predict(self, scan: ScanLike, mask: str | Path | None = None,
                contrasts: ContrastFiles | None = None) -> PredictionResult:
        """The anomaly map, binary mask and reconstruction of one preprocessed scan, in its own
        geometry (see :meth:`prepare` for the arguments and errors)."""
        return self.predict_prepared(self.prepare(scan, mask, contrasts))

    def reconstruct(self, scan: ScanLike, mask: str | Path | None = None,
                    contrasts: ContrastFiles | None = None) -> np.ndarray:
        """The pseudo-healthy reconstruction of one preprocessed scan.

        Returns:
            (I, J, K) float32 in [0, 1] on the scan's voxel grid, on the model's normalised intensity
            scale; 0 outside the model's box.

        Raises:
            ValueError: the method has no ``reconstruct``.
        """
        if not isinstance(self.method, Reconstructor):
            raise ValueError(f"{type(self.method).__name__} has no reconstruct(): it gives anomaly maps only")
        prepared = self.prepare(scan, mask, contrasts)
        reconstruction = self.scorer.score(prepared.grid).reconstruction
        if reconstruction is None:
            raise ValueError(f"{type(self.method).__name__} gave no reconstruction")
        clipped: np.ndarray = np.clip(prepared.to_input(reconstruction, label=False), 0.0, 1.0)
        return clipped

    def predict_files(self, scans: Sequence[str | Path], mask: str | Path | None = None,
                      contrasts: ContrastFiles | None = None
                      ) -> Iterator[tuple[Path, PredictionResult | BrainUADError]]:
        """Predict many scan files with the loaded model, reading the next scan in a background
        thread while the current one is reconstructed.

        Args:
            scans: image files.
            mask: one brain mask for every scan (default: each scan's own, :func:`find_mask`).
            contrasts: other contrasts' files for every scan (one scan; default: each scan's own,
                :func:`find_contrast`).

        Yields:
            ``(scan, result)`` in the order given; ``result`` is the error (naming the file) for a
            scan that cannot be read or used, and the next scans are still predicted.
        """
        if isinstance(scans, (str, Path)):
            raise ValueError(f"scans must be a list of files, got the single path {scans!r}")
        paths = [Path(scan) for scan in scans]
        if not paths:
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="brainuad-read") as reader:
            upcoming: Future[PreparedScan] = reader.submit(self.prepare, paths[0], mask, contrasts)
            for index, path in enumerate(paths):
                current = upcoming
                if index + 1 < len(paths):
                    upcoming = reader.submit(self.prepare, paths[index + 1], mask, contrasts)
                try:
                    prepared = current.result()
                except BrainUADError as error:
                    yield path, error
                    continue
                yield path, self.predict_prepared(prepared)


def load_detector(run_dir: str | Path, *, threshold: float | None = None, threshold_from: str | Path | None = None,
                  dataset: str | None = None, device: str = "cpu",
                  orientation: str = TRAINING_ORIENTATION, preprocessing: "Pipeline | None" = None) -> Detector:
    """A trained run, ready to predict on preprocessed scans.

    Args:
        run_dir: a training run directory (``config.yaml`` and ``model.safetensors``).
        threshold, threshold_from, dataset: which threshold binarises the maps (see
            :func:`resolve_threshold`; default: the one ``brainuad evaluate`` stored for the run's
            first lesion set).
        device: where the model runs (``cpu``, ``cuda``, ``cuda:1``, ...).
        orientation: the training data's axis order (see :class:`Detector`).
        preprocessing: the pipeline for raw scans (see :class:`Detector`;
            :func:`~brainuad.preprocess.prepare.default_pipeline`).

    Raises:
        InputError: an unusable run directory, or no threshold to use (see :func:`resolve_threshold`).
        ValueError: a bad argument.

    Example::

        from brainuad import load_detector
        detector = load_detector("runs/cddpm-t2-fold0")
        result = detector.predict("sub-01_t2.nii.gz")   # result.anomaly_map, .binary_mask, ...
    """
    config, method = load_run(run_dir, device)
    choice = resolve_threshold(run_dir, threshold=threshold, threshold_from=threshold_from, dataset=dataset)
    return Detector(method, choice, orientation=orientation, name=Path(run_dir).name, preprocessing=preprocessing,
                    normalise_on=config.data.normalise_on)


def training_atlas(run_dir: str | Path) -> "tuple[Atlas, str]":
    """The atlas the run's training data were registered to, and where that was read, in words.

    The run's data directory (``data.root`` in its ``config.yaml``) records its space in
    ``space.json`` when ``brainuad prepare`` made it; otherwise the data are taken to lie in MNI152
    (nilearn's bundled template), the space of the synthetic cohort and ``prepare``'s default.

    Raises:
        InputError: the data directory was prepared without registration (raw scans cannot be
            brought into its space), or its atlas file is gone or changed.
        ConfigError: the run's ``config.yaml`` is not a valid run config (a missing one: InputError).
    """
    from brainuad.preprocess.prepare import SPACE_FILE, space_atlas
    from brainuad.preprocess.register import Atlas

    root = read_run_config(run_dir).data.root
    if root is not None and (Path(root) / SPACE_FILE).is_file():
        atlas = space_atlas(root)
        if atlas is None:
            raise InputError(Path(root) / SPACE_FILE, "the training data were prepared without registration, so raw "
                                                      "scans cannot be brought into their space",
                             "give the atlas the data lie in with --atlas")
        return atlas, f"the training data's space ({Path(root) / SPACE_FILE})"
    return Atlas.mni152(), ("no space.json in the run's data directory: taken as MNI152, the synthetic cohort's "
                            "space and brainuad prepare's default")
