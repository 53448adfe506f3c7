"""Preprocessing of raw scans and of the five data sets' downloads (method.md §2, paper §4.2).

- :mod:`~brainuad.preprocess.resample`: voxel grids, isotropic resampling, one-interpolation resampling.
- :mod:`~brainuad.preprocess.register`: atlases (MNI152 bundled with nilearn, or any by path), affine
  registration to them and rigid alignment of a subject's modalities (SimpleITK).
- :mod:`~brainuad.preprocess.skullstrip`: skull strippers (deepbet, none, atlas-mask, hd-bet).
- :mod:`~brainuad.preprocess.bias`: N4 bias-field correction.
- :mod:`~brainuad.preprocess.crop`: the brain's box and the 192 x 192 x 160 window.
- :mod:`~brainuad.preprocess.record`: transform records, and the mapping of prepared-space arrays back
  onto the raw scan's grid.
- :mod:`~brainuad.preprocess.pipeline`: one subject, every step switchable.
- :mod:`~brainuad.preprocess.recipes`: where each data set's files are in its download.
- :mod:`~brainuad.preprocess.batch`: subjects in parallel processes, resumable, failures reported.
- :mod:`~brainuad.preprocess.prepare`: a download -> a prepared data directory with split CSVs.
- :mod:`~brainuad.preprocess.options`: the checks of the preprocessing options ``prepare`` and
  ``predict --raw`` share, and the atlas they name (the commands are in :mod:`brainuad.cli`).

Nothing is imported here, so ``brainuad --help`` stays fast.
"""
