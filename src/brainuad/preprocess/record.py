"""What preprocessing did to a scan, saved next to its outputs so results can be mapped back.

Every spatial step of the pipeline is affine, so one prepared volume relates to its raw scan by
three things (:class:`TransformRecord`): the raw scan's grid, the prepared grid and one 4x4 map
from prepared-world to raw-world millimetres (the registration, composed with the rigid
alignment of another modality to the reference scan). :meth:`TransformRecord.to_raw` carries a
prepared-space array (a 192 x 192 x 160 anomaly map, say) back onto the raw scan's voxel grid with a
single interpolation; :meth:`TransformRecord.to_prepared` goes the other way.

A :class:`PreparationRecord` gathers the records of a subject's modalities with what was done
(steps, skull stripper, atlas, time per step); it is written as JSON
(``<data set>/transforms/<subject>.json`` in a prepared data directory).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainuad.atomic import write_text
from brainuad.errors import InputError
from brainuad.preprocess.resample import Grid, Interpolation, resample

RECORD_VERSION = 1


@dataclass(frozen=True, eq=False)
class TransformRecord:
    """How one prepared volume lies relative to the raw scan it was made from.

    Attributes:
        raw: the raw scan's grid (its file's shape and affine).
        prepared: the prepared volume's grid (e.g. 192 x 192 x 160 at 1 mm in atlas space).
        world: (4, 4) map from prepared-world to raw-world mm.
        source: the raw file (as given to the pipeline).
    """

    raw: Grid
    prepared: Grid
    world: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        world = np.asarray(self.world, dtype=np.float64)
        if world.shape != (4, 4) or not np.isfinite(world).all() or abs(np.linalg.det(world[:3, :3])) < 1e-12:
            raise ValueError(f"TransformRecord: world must be a finite invertible 4x4 matrix, got {self.world!r}")
        object.__setattr__(self, "world", world)

    def to_raw(self, array: np.ndarray, interpolation: Interpolation = "linear") -> np.ndarray:
        """Carry a prepared-space array onto the raw scan's grid.

        Args:
            array: ``prepared.shape`` values (an anomaly map, a binary lesion map, ...).
            interpolation: ``linear`` for continuous maps (default), ``nearest`` for labels (keeps
                the dtype), ``cubic`` for images.

        Returns:
            ``raw.shape`` array, 0 where the raw scan lies outside the prepared box.
        """
        return resample(array, self.prepared, self.raw, world=np.linalg.inv(self.world), interpolation=interpolation)

    def to_prepared(self, array: np.ndarray, interpolation: Interpolation = "cubic") -> np.ndarray:
        """Carry a raw-grid array into prepared space (the pipeline's spatial steps without the
        intensity steps). Returns a ``prepared.shape`` array."""
        return resample(array, self.raw, self.prepared, world=self.world, interpolation=interpolation)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"raw": self.raw.to_dict(), "prepared": self.prepared.to_dict(), "world": self.world.tolist(),
                "source": self.source}

    @classmethod
    def from_dict(cls, data: dict) -> "TransformRecord":
        """Inverse of :meth:`to_dict`."""
        return cls(Grid.from_dict(data["raw"]), Grid.from_dict(data["prepared"]),
                   np.asarray(data["world"], dtype=np.float64), str(data.get("source", "")))


@dataclass(frozen=True, eq=False)
class PreparationRecord:
    """What the pipeline did to one subject.

    Attributes:
        subject: the subject's name.
        reference: the modality that was registered (its record's ``world`` is the registration).
        records: modality -> :class:`TransformRecord` of each prepared image.
        steps: the steps that ran, in order (``resample``, ``register``, ``align``, ``skull_strip``,
            ``crop``, ``bias``, ``pad``).
        skull_strip: the skull stripper's name, or ``given`` for a brain mask read from a file.
        atlas: the atlas's name, or None without registration.
        cut_brain_voxels: brain-mask voxels that fell outside the final box (0 when it held the brain).
        seconds: step -> wall-clock seconds it took.
    """

    subject: str
    reference: str
    records: dict[str, TransformRecord]
    steps: tuple[str, ...]
    skull_strip: str
    atlas: str | None
    cut_brain_voxels: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"version": RECORD_VERSION, "subject": self.subject, "reference": self.reference,
                "steps": list(self.steps), "skull_strip": self.skull_strip, "atlas": self.atlas,
                "cut_brain_voxels": self.cut_brain_voxels, "seconds": dict(self.seconds),
                "records": {name: record.to_dict() for name, record in self.records.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "PreparationRecord":
        """Inverse of :meth:`to_dict`."""
        return cls(str(data["subject"]), str(data["reference"]),
                   {name: TransformRecord.from_dict(item) for name, item in data["records"].items()},
                   tuple(data["steps"]), str(data["skull_strip"]), data.get("atlas"),
                   int(data.get("cut_brain_voxels", 0)), {k: float(v) for k, v in data.get("seconds", {}).items()})

    def save(self, path: str | Path) -> Path:
        """Write the record as JSON, atomically."""
        return write_text(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "PreparationRecord":
        """Read a record written by :meth:`save`.

        Raises:
            InputError: the file is missing or is not a preparation record.
        """
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "transform record not found")
        try:
            data = json.loads(path.read_text())
            if data.get("version") != RECORD_VERSION:
                raise ValueError(f"unknown version {data.get('version')!r}")
            return cls.from_dict(data)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise InputError(path, f"is not a brainuad transform record ({error})") from error
