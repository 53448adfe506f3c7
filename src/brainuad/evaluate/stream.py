"""The scored volumes of one split, in split order, as the evaluation engine consumes them.

Volumes are read and brought to the model grid by DataLoader workers while the model scores the
previous ones, scored several at a time (their slices and noise levels share forward batches:
:attr:`~brainuad.evaluate.scoring.VolumeScorer.volumes_per_batch`), their anomaly maps
post-processed on the scorer's device (:func:`~brainuad.evaluate.postprocess.postprocess_maps`:
the batch at once on a GPU), and, when the evaluation runs in several processes (:class:`Shard`),
each process scores and post-processes its share of every batch and all processes receive every
scored volume. The engine then reduces the same volumes in the same order
in every process, so its numbers equal those of one process exactly (each volume's test-time
noise depends on the volume alone, never on the batch it was scored in).

Memory holds one batch of volumes per process (times the loader's prefetch), whatever the split's size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

from brainuad.data.grid import GridVolume
from brainuad.data.layout import Subject
from brainuad.errors import BrainUADError
from brainuad.evaluate.postprocess import PostProcessing, postprocess_maps
from brainuad.evaluate.scoring import ScoredVolume, VolumeScorer

__all__ = ["Shard", "ShareFailure", "scored_volumes"]


@dataclass(frozen=True)
class Shard:
    """This process's place among the processes of a sharded evaluation (an initialised
    ``torch.distributed`` process group of ``world`` ranks)."""

    rank: int
    world: int

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world:
            raise ValueError(f"rank {self.rank!r} must lie in 0..{self.world - 1}")

    def share(self, count: int) -> range:
        """The positions of a batch of ``count`` volumes this rank scores: every ``world``-th from ``rank``."""
        return range(self.rank, count, self.world)

    def gather(self, count: int, scored: list[ScoredVolume] | ShareFailure) -> list[ScoredVolume]:
        """Every rank's scored volumes of a batch of ``count``, back in batch order (a collective:
        every rank calls it with its own :meth:`share` scored, or with what stopped it).

        Raises:
            BrainUADError: in every rank, when a rank could not score its share (the rank that
                failed raises its own error instead), so no rank waits for the others' next batch.
        """
        shares: list[list[ScoredVolume] | ShareFailure | None] = [None] * self.world
        dist.all_gather_object(shares, scored)
        failures = [share for share in shares if isinstance(share, ShareFailure)]
        if failures:
            raise BrainUADError(f"rank {failures[0].rank} could not score volumes {', '.join(failures[0].volumes)}: "
                                f"{failures[0].error}")
        ordered: list[ScoredVolume | None] = [None] * count
        for rank, share in enumerate(shares):
            if not isinstance(share, list):
                raise RuntimeError(f"rank {rank} sent no scored volumes")
            for position, volume in zip(range(rank, count, self.world), share, strict=True):
                ordered[position] = volume
        return [volume for volume in ordered if volume is not None]


@dataclass(frozen=True)
class ShareFailure:
    """What a rank sends instead of its scored share when scoring or post-processing it raised."""

    rank: int
    volumes: tuple[str, ...]
    error: str


class _Volumes(Dataset):
    """The split's subjects, each read by ``load`` (in a loader worker); a read that fails yields
    None, and the main process reads that subject again to raise its error there."""

    def __init__(self, subjects: Sequence[Subject], load: Callable[[Subject], GridVolume]) -> None:
        self.subjects = list(subjects)
        self.load = load

    def __len__(self) -> int:
        return len(self.subjects)

    def __getitem__(self, index: int) -> GridVolume | None:
        try:
            return self.load(self.subjects[index])
        except Exception:  # noqa: BLE001 -- raised again, with its own type, in the main process
            return None


def _unbatched(items: list[GridVolume | None]) -> list[GridVolume | None]:
    return items


def _score_share(scorer: VolumeScorer, volumes: list[GridVolume],
                 postprocessings: Sequence[PostProcessing]) -> list[ScoredVolume]:
    scored = scorer.score_many(volumes)
    maps = postprocess_maps(postprocessings, [item.anomaly_map for item in scored],
                            [volume.mask for volume in volumes], scorer.device)
    return [replace(item, postprocessed=processed) for item, processed in zip(scored, maps, strict=True)]


def scored_volumes(scorer: VolumeScorer, subjects: Sequence[Subject], load: Callable[[Subject], GridVolume], *,
                   workers: int = 0, shard: Shard | None = None, postprocessings: Sequence[PostProcessing] = (),
                   ) -> Iterator[tuple[Subject, GridVolume, ScoredVolume]]:
    """Each subject with its volume and scored volume, in the order of ``subjects``.

    Args:
        scorer: scores batches of :attr:`~brainuad.evaluate.scoring.VolumeScorer.volumes_per_batch`
            volumes (per process).
        load: reads a subject's model-grid volume (picklable when ``workers`` > 0).
        workers: DataLoader worker processes reading volumes ahead (0: read in this process).
        shard: this process's share of a sharded evaluation, or None (one process scores all).
        postprocessings: each scored volume's ``postprocessed`` maps (on the scorer's device).

    Raises:
        whatever ``load`` raises for a subject that cannot be read (in this process, with its own type).
    """
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers!r}")
    world = 1 if shard is None else shard.world
    per_batch = scorer.volumes_per_batch * world
    loader = DataLoader(_Volumes(subjects, load), batch_size=per_batch, collate_fn=_unbatched, num_workers=workers,
                        prefetch_factor=2 if workers else None, pin_memory=False)
    for start, volumes in zip(range(0, len(subjects), per_batch), loader, strict=True):
        batch = subjects[start:start + per_batch]
        read = [volume if volume is not None else load(subject) for subject, volume in zip(batch, volumes)]
        if shard is None:
            scored = _score_share(scorer, read, postprocessings)
        else:
            share = [read[i] for i in shard.share(len(read))]
            try:
                mine: list[ScoredVolume] | ShareFailure = _score_share(scorer, share, postprocessings)
            except Exception as error:  # the others are told before this rank raises it
                failure = ShareFailure(shard.rank, tuple(volume.name for volume in share),
                                       f"{type(error).__name__}: {error}")
                try:
                    shard.gather(len(read), failure)
                except BrainUADError:
                    pass
                raise
            scored = shard.gather(len(read), mine)
        yield from zip(batch, read, scored, strict=True)

