"""Warms a child started ahead of its job (``grader watch``): compiles, on zeros, the operations the cases
will use, so that the learner's eager init and apply calls find them compiled.

It is not a solution: its layers sit at other module paths, so its parameters and outputs differ from the
expected ones, and it never sees a case's real inputs (the grader zeroes every array before handing the calls
over).
"""

import flax.linen as nn
import jax


class _Warm(nn.Module):
    @nn.compact
    def __call__(self, x, train):
        x = nn.Dense(features=x.shape[-1], name="warm_dense")(x)
        return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name="warm_norm")(x)


def warm_up(calls):
    """Per call: init, the training step, then the call in its mode, as a solution makes them."""
    for seed, x, train in calls:
        warm = _Warm()
        state = warm.init(jax.random.PRNGKey(int(seed)), x, train=False)
        _, moved = warm.apply(state, x, train=True, mutable=["batch_stats"])
        state = {**state, **moved}
        if train >= 0.5:
            jax.block_until_ready(warm.apply(state, x, train=True, mutable=["batch_stats"]))
        else:
            jax.block_until_ready(warm.apply(state, x, train=False))
