"""Experiments: a grid of trainings over models, folds and modalities, the paper's studies on them,
and one report (``brainuad experiment``).

- :mod:`~brainuad.experiment.spec`: the experiment file (typed);
- :mod:`~brainuad.experiment.reference`: the paper's published Table 2 and 3 rows;
- :mod:`~brainuad.experiment.plan`: the experiment expanded into run configs and folders;
- :mod:`~brainuad.experiment.manifest`: ``manifest.json``, provenance and cost;
- :mod:`~brainuad.experiment.run`: training, evaluation and studies, resumable;
- :mod:`~brainuad.experiment.report`: the report and its table files.
"""
