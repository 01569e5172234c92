"""The two cuts of issue 28 inside a training job, each against what it replaced, in one process.

Usage: python benchmarks/bench_overhead.py [--repeats 15] [--steps 2000]

1. The GD update of a ss_fig1 seed batch (W: (5, 10^4, 6), float64): ``torch.optim.SGD.step``
   against ``GDSystem._update`` (``p.add_(grad, alpha=-lr)``); the results must be bit-identical.
2. One record at m = 10^4 (``RunMetrics.__call__``): J0^T V multiplying by the bool activation
   pattern (before) against the 0/1 float copy made once (now); the same numbers, bit for bit.

Both are timed alternately (median of ``--repeats``), one thread, as in a training job.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import types

import torch

from minnorm.core import target as target_module
from minnorm.core.model import TwoLayerReLU, augment_inputs, init_weights
from minnorm.core.target import MinNormTarget, min_norm_target
from minnorm.training.resources import retain_freed_memory
from minnorm.training.run_record import RunMetrics
from minnorm.training.system import GDSystem


def old_jvp(self: MinNormTarget, V: torch.Tensor) -> torch.Tensor:
    """J0^T V as before issue 28: the bool pattern S converted on every call."""
    return target_module._pattern_jvp(self.Xt, self.S, self.a, self._as64(V))


def same(a: dict[str, float], b: dict[str, float]) -> bool:
    return all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps", type=int, default=2000, help="updates per timing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    retain_freed_memory()
    gen = torch.Generator().manual_seed(0)
    m, seeds = 10_000, 5
    W0 = torch.randn(seeds, m, 6, generator=gen, dtype=torch.float64)
    signs = torch.randint(0, 2, (seeds, m), generator=gen, dtype=torch.float64) * 2 - 1
    grad = torch.randn(seeds, m, 6, generator=gen, dtype=torch.float64) * 1e-9
    ends = []
    times: dict[str, list[float]] = {"SGD.step": [], "_update": []}
    for _ in range(args.repeats):
        for name in times:
            system = GDSystem(
                TwoLayerReLU(W0.clone(), signs, True),
                lr=0.01,
                loss="half_sum",
                step_impl="fused",
                boundaries=[0, 1],
            )
            optimizer = system.configure_optimizers()
            system.model.W.grad = grad
            update = (
                optimizer.step if name == "SGD.step" else lambda s=system, o=optimizer: s._update(o)
            )
            start = time.perf_counter()
            for _ in range(args.steps):
                update()
            times[name].append((time.perf_counter() - start) / args.steps)
            ends.append(system.model.W.detach().clone())
    assert all(torch.equal(ends[0], e) for e in ends), "the updates differ"
    old, new = (statistics.median(times[k]) * 1e6 for k in times)
    print("| cut | before | now | ratio |\n|---|---|---|---|")
    print(
        f"| GD update, W (5, 10^4, 6), per step: SGD.step / p.add_ | {old:.1f} us | {new:.1f} us "
        f"| {old / new:.2f}x |"
    )

    X = torch.nn.functional.normalize(torch.randn(100, 5, generator=gen, dtype=torch.float64), 1)
    X_test = torch.nn.functional.normalize(
        torch.randn(200, 5, generator=gen, dtype=torch.float64), 1
    )
    y, y_test = (
        torch.randn(100, generator=gen, dtype=torch.float64),
        torch.randn(200, generator=gen, dtype=torch.float64),
    )
    W1, a = init_weights(m, 6, 1.0, seed=0)
    target = min_norm_target(augment_inputs(X, True), y, W1, a)
    metrics = RunMetrics(
        target, types.SimpleNamespace(X_train=X, X_test=X_test, y_test=y_test), False
    )  # type: ignore[arg-type]
    W = W1 + 0.01 * torch.randn(m, 6, generator=gen, dtype=torch.float64)
    now_jvp = MinNormTarget.jvp
    record: dict[str, list[float]] = {"before": [], "now": []}
    values = []
    for _ in range(args.repeats):
        for name, jvp in (("before", old_jvp), ("now", now_jvp)):
            MinNormTarget.jvp = jvp  # type: ignore[method-assign]
            start = time.perf_counter()
            values.append(metrics(W))
            record[name].append(time.perf_counter() - start)
    MinNormTarget.jvp = now_jvp  # type: ignore[method-assign]
    assert all(same(values[0], v) for v in values), "the records differ"
    old, new = (statistics.median(record[k]) * 1e3 for k in record)
    print(
        f"| one record at m = 10^4: bool S / 0/1 floats | {old:.2f} ms | {new:.2f} ms "
        f"| {old / new:.2f}x |"
    )


if __name__ == "__main__":
    main()
