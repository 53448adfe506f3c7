"""Data layer: NIfTI I/O, volumes, data-set layouts and splits, the model grid, slice sampling and
augmentation, and the synthetic cohort."""
