"""Which runs train side by side: the one place that groups runs into batches.

Runs with equal `batch_key` (the same training inputs X, training settings, bias and width) can
share each GD step's call (`minnorm.training.train.train_runs`); a job's runs are cut into such
batches of at most `resources.batch_size_limit` runs (`plan_batches`), and a batch whose
checkpoints stand at different steps trains in one group per starting step (`start_groups`).
"""

from __future__ import annotations

from collections.abc import Sequence

from minnorm.config.run_config import RunConfig, TrainingSettings
from minnorm.data.datasets import Dataset
from minnorm.training.resources import batch_size_limit

BatchKey = tuple[bytes, TrainingSettings, bool, int, str, float, bool]


def batch_key(data: Dataset, run: RunConfig) -> BatchKey:
    """Runs with equal keys can be trained side by side by ``train_runs``: the same training
    inputs (bytes of X_train), the same ``training`` settings, bias and width, and the same step
    function (activation, its leak, whether a is trained). Seeds, kappa (it changes W0 only) and
    label noise (it changes y only) may differ."""
    model = run.model
    return (
        data.X_train.numpy().tobytes(),
        run.training,
        model.bias,
        run.width,
        model.activation,
        float(model.leak),
        model.train_output,
    )


def check_batch(datas: Sequence[Dataset], runs: Sequence[RunConfig]) -> None:
    """ValueError unless every run of a batch has the batch key of run 0."""
    if not (runs and len(datas) == len(runs)):
        raise ValueError(f"need one data set per run config, got {len(datas)} and {len(runs)}")
    key = batch_key(datas[0], runs[0])
    for index, (data, run) in enumerate(zip(datas, runs, strict=True)):
        if batch_key(data, run) != key:
            raise ValueError(
                f"run {index} of the batch differs from run 0 in its training inputs or settings "
                f"(data X, training section, bias, width or activation); train it separately"
            )


def weight_dim(data: Dataset, run: RunConfig) -> int:
    """Dimension p of a weight vector: the data's input dimension, plus one with a bias."""
    return int(data.X_train.shape[1]) + int(run.model.bias)


def plan_batches(datas: Sequence[Dataset], runs: Sequence[RunConfig]) -> list[list[int]]:
    """The runs (indices, in order) grouped into batches to train side by side: equal
    `batch_key`, at most `batch_size_limit` runs each (memory), groups in order of first
    appearance."""
    groups: dict[BatchKey, list[int]] = {}
    for index, (data, run) in enumerate(zip(datas, runs, strict=True)):
        groups.setdefault(batch_key(data, run), []).append(index)
    batches: list[list[int]] = []
    for members in groups.values():
        data, run = datas[members[0]], runs[members[0]]
        size = batch_size_limit(
            data.X_train.shape[0], run.width, weight_dim(data, run), run.training.dtype
        )
        batches.extend(members[i : i + size] for i in range(0, len(members), size))
    return batches


def start_groups(starts: Sequence[int]) -> list[list[int]]:
    """Indices of the runs grouped by the step they start from (a resumed run's checkpoint
    step), in ascending order of that step."""
    return [
        [i for i, start in enumerate(starts) if start == first] for first in sorted(set(starts))
    ]
