"""Recipes: where each data set's files are in its download and how its subjects are prepared.

A recipe finds the complete subjects of a download (``SRC``, searched recursively, so the archive
may be unpacked one folder deeper or shallower), says which scan is the reference (registered,
skull-stripped, and the image of the split CSVs), which other modalities come along and how they
are aligned, what counts as lesion in the label map, and which skull stripper suits the data.
The layouts (docs/preprocessing.md has the download steps)::

    ixi      SRC/**/IXI002-Guys-0828-T1.nii.gz and SRC/**/IXI002-Guys-0828-T2.nii.gz (IXI-T1.tar and
             IXI-T2.tar unpacked); ages from SRC/**/IXI.xls (needs xlrd) or an IXI.csv with the
             columns IXI_ID and AGE. T1 is the reference; T2 is aligned to it rigidly. deepbet.
    brats21  SRC/**/BraTS2021_00000/BraTS2021_00000_{t2,seg}.nii.gz (the training data: 1251
             subjects), with the _t1 beside it where there is one (co-registered, for
             multi-contrast methods). Skull-stripped already (``none``); whole tumour = labels
             1, 2 and 4.
    mslub    SRC/**/patient01/{T2W,consensus_gt}.nii.gz: the "coregistered" images of the
             Ljubljana MS database (T2W, FLAIR, ... and the consensus in one space), with the
             T1W beside it where there is one; where a patient also has a "raw" folder, the
             coregistered one is used. deepbet.
    atlas    SRC/**/sub-r001s001_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz with
             ..._label-L_desc-T1lesion_mask.nii.gz beside it (ATLAS v2.0 training data, decrypted;
             the unlabelled test images are left out). deepbet.
    wmh      SRC/**/<site>/<id>/{pre/T1.nii.gz, pre/FLAIR.nii.gz, wmh.nii.gz} (the WMH challenge
             training data); T1 is the reference, FLAIR shares its grid; WMH = label 1 (label 2,
             "other pathology", is not lesion). deepbet.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from brainuad.preprocess.pipeline import OtherScan, ScanInputs


@dataclass(frozen=True)
class FoundSubject:
    """A complete subject of a download.

    Attributes:
        inputs: its files, as the pipeline takes them (``inputs.name`` is its name in the layout).
        age: years, when the download gives it.
    """

    inputs: ScanInputs
    age: float | None = None

    @property
    def name(self) -> str:
        return self.inputs.name


@dataclass
class Discovery:
    """What a recipe found in a download.

    Attributes:
        subjects: complete subjects, sorted by name.
        incomplete: subject name -> why it is left out (a missing modality or label map).
        notes: remarks on the download as a whole (ages that could not be read, ...).
    """

    subjects: list[FoundSubject] = field(default_factory=list)
    incomplete: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Recipe(ABC):
    """How one data set is found in its download and prepared.

    Attributes:
        dataset_id: the data set (a key of :data:`brainuad.data.layout.DATASETS`).
        skull_strip: the skull stripper its data need (``deepbet`` or ``none``).
    """

    dataset_id: str
    skull_strip: str

    @abstractmethod
    def find(self, src: Path) -> Discovery:
        """The subjects under the download folder ``src``."""


def _files(src: Path, pattern: str) -> list[Path]:
    """Files under ``src`` (recursively) whose name matches the regular expression ``pattern``, sorted."""
    expression = re.compile(pattern)
    return sorted(path for path in src.rglob("*") if expression.fullmatch(path.name) and path.is_file())


def _beside(folder: Path, modality: str, *names: str) -> tuple[OtherScan, ...]:
    """The first of the files ``names`` in ``folder`` as the subject's co-registered ``modality``
    scan, or nothing where none is there (the modality is optional)."""
    path = next((folder / name for name in names if (folder / name).is_file()), None)
    return () if path is None else (OtherScan(modality, path, coregistered=True),)


def _sorted(discovery: Discovery) -> Discovery:
    discovery.subjects.sort(key=lambda subject: subject.name)
    return discovery


class IxiRecipe(Recipe):
    """IXI: T1 (reference) and T2 (rigidly aligned to the T1), ages from IXI.xls or IXI.csv."""

    dataset_id = "ixi"
    skull_strip = "deepbet"
    _scan = r"(IXI\d{3}-[A-Za-z]+-\d{4})-(T1|T2)\.nii(\.gz)?"

    def find(self, src: Path) -> Discovery:
        discovery = Discovery()
        scans: dict[str, dict[str, Path]] = {}
        for path in _files(src, self._scan):
            match = re.fullmatch(self._scan, path.name)
            if match is None:  # not reached: _files keeps the matching names only
                continue
            name, modality = match.group(1, 2)
            scans.setdefault(name, {}).setdefault(modality.lower(), path)
        ages = self._ages(src, discovery)
        for name, files in scans.items():
            missing = [modality.upper() for modality in ("t1", "t2") if modality not in files]
            if missing:
                discovery.incomplete[name] = f"no {' or '.join(missing)} scan in the download"
                continue
            inputs = ScanInputs(name, "t1", files["t1"], others=(OtherScan("t2", files["t2"]),))
            discovery.subjects.append(FoundSubject(inputs, ages.get(int(name[3:6]))))
        return _sorted(discovery)

    @staticmethod
    def _ages(src: Path, discovery: Discovery) -> dict[int, float]:
        """IXI_ID -> AGE from the download's table (IXI.csv, or IXI.xls when xlrd is installed)."""
        import pandas as pd

        tables = _files(src, r"IXI\.(csv|xls)")
        if not tables:
            discovery.notes.append("no IXI.xls or IXI.csv found: ages left empty")
            return {}
        table_path = tables[0]
        try:
            table = pd.read_csv(table_path) if table_path.suffix == ".csv" else pd.read_excel(table_path)
        except ImportError:
            discovery.notes.append(f"{table_path}: reading .xls needs the xlrd package; ages left empty "
                                   f"(or save the sheet as IXI.csv)")
            return {}
        except (ValueError, OSError) as error:
            discovery.notes.append(f"{table_path}: unreadable ({error}); ages left empty")
            return {}
        if not {"IXI_ID", "AGE"} <= set(table.columns):
            discovery.notes.append(f"{table_path}: no IXI_ID and AGE columns; ages left empty")
            return {}
        table = table.dropna(subset=["IXI_ID", "AGE"])
        return {int(row.IXI_ID): round(float(row.AGE), 2) for row in table.itertuples()}


class Brats21Recipe(Recipe):
    """BraTS 2021: T2 (and T1 where given) and the whole tumour (labels 1, 2, 4), already skull-stripped."""

    dataset_id = "brats21"
    skull_strip = "none"

    def find(self, src: Path) -> Discovery:
        discovery = Discovery()
        for t2 in _files(src, r"BraTS2021_\d+_t2\.nii(\.gz)?"):
            name = t2.name.split("_t2.nii")[0]
            seg = next((path for path in (t2.parent / f"{name}_seg.nii.gz", t2.parent / f"{name}_seg.nii")
                        if path.is_file()), None)
            if seg is None:
                discovery.incomplete[name] = "no _seg label map beside the T2 (validation data are unlabelled)"
                continue
            others = _beside(t2.parent, "t1", f"{name}_t1.nii.gz", f"{name}_t1.nii")
            discovery.subjects.append(FoundSubject(ScanInputs(name, "t2", t2, seg=seg, lesion_labels=(1, 2, 4),
                                                              others=others)))
        return _sorted(discovery)


class MslubRecipe(Recipe):
    """MSLUB: the coregistered T2W (and T1W where given) with the consensus lesion segmentation."""

    dataset_id = "mslub"
    skull_strip = "deepbet"

    @staticmethod
    def _rank(t2: Path) -> int:
        """2 for a file in a ``coregistered`` folder, 1 in another co-registered variant, 0 else (raw)."""
        folder = t2.parent.parent.name.lower()
        return 2 if folder == "coregistered" else int("coregistered" in folder)

    def find(self, src: Path) -> Discovery:
        discovery = Discovery()
        chosen: dict[str, Path] = {}
        for t2 in _files(src, r"T2W\.nii(\.gz)?"):
            name = t2.parent.name
            if re.fullmatch(r"patient\d+", name) and (name not in chosen or self._rank(t2) > self._rank(chosen[name])):
                chosen[name] = t2
        for name, t2 in chosen.items():
            seg = next((path for path in t2.parent.glob("consensus_gt.nii*") if path.is_file()), None)
            if seg is None:
                discovery.incomplete[name] = f"no consensus_gt beside {t2}"
                continue
            others = _beside(t2.parent, "t1", "T1W.nii.gz", "T1W.nii")
            discovery.subjects.append(FoundSubject(ScanInputs(name, "t2", t2, seg=seg, others=others)))
        return _sorted(discovery)


class AtlasRecipe(Recipe):
    """ATLAS v2.0: T1w and its lesion mask (training data)."""

    dataset_id = "atlas"
    skull_strip = "deepbet"
    _scan = r"(sub-[A-Za-z0-9]+(?:_ses-[A-Za-z0-9]+)?)_(space-[A-Za-z0-9]+_)?T1w\.nii(\.gz)?"

    def find(self, src: Path) -> Discovery:
        discovery = Discovery()
        for t1 in _files(src, self._scan):
            match = re.fullmatch(self._scan, t1.name)
            if match is None:  # not reached: _files keeps the matching names only
                continue
            name, space = match.group(1), match.group(2) or ""
            masks = sorted(t1.parent.glob(f"{name}_{space}label-L_desc-T1lesion_mask.nii*"))
            if not masks:
                discovery.incomplete[name] = "no lesion mask beside the T1w (ATLAS test images are unlabelled)"
                continue
            discovery.subjects.append(FoundSubject(ScanInputs(name, "t1", t1, seg=masks[0])))
        return _sorted(discovery)


class WmhRecipe(Recipe):
    """WMH challenge: T1 (reference) and FLAIR from ``pre/``, lesion = label 1 of wmh.nii.gz."""

    dataset_id = "wmh"
    skull_strip = "deepbet"

    def find(self, src: Path) -> Discovery:
        discovery = Discovery()
        for seg in _files(src, r"wmh\.nii(\.gz)?"):
            folder = seg.parent
            name = f"{folder.parent.name}_{folder.name}"
            t1 = next(iter(sorted((folder / "pre").glob("T1.nii*"))), None)
            flair = next(iter(sorted((folder / "pre").glob("FLAIR.nii*"))), None)
            if t1 is None or flair is None:
                discovery.incomplete[name] = f"no pre/T1 and pre/FLAIR in {folder}"
                continue
            inputs = ScanInputs(name, "t1", t1, seg=seg, lesion_labels=(1,),
                                others=(OtherScan("flair", flair, coregistered=True),))
            discovery.subjects.append(FoundSubject(inputs))
        return _sorted(discovery)


RECIPES: dict[str, Recipe] = {recipe.dataset_id: recipe for recipe in (
    IxiRecipe(), Brats21Recipe(), MslubRecipe(), AtlasRecipe(), WmhRecipe())}
"""Data-set id -> its recipe."""


def recipe(dataset_id: str) -> Recipe:
    """The recipe of ``dataset_id`` (ixi, brats21, mslub, atlas, wmh)."""
    if dataset_id not in RECIPES:
        raise ValueError(f"unknown data set {dataset_id!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[dataset_id]
