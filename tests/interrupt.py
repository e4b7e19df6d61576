"""Interrupting a run the way a preempted job would be: an exception out of the epoch hook."""
import pytest

from pemscl import config as CF

from pemscl import train as T


class Preempted(Exception):
    pass


def _preempt(row, ctx):
    if row["epoch"] == 1:
        raise Preempted


def train_one_epoch_then_preempt(cfg: CF.TrainConfig, root) -> None:
    """Start `cfg` under `root` and stop it after its first epoch's checkpoint (a rerun resumes it)."""
    with pytest.raises(Preempted):
        T.train(cfg, root=root, progress=False, on_epoch_end=_preempt)
