"""Correct: the whole computation compiled with jax.jit, the mode a static argument."""

from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp


class BatchNormModel(nn.Module):
    @nn.compact
    def __call__(self, inputs: jnp.ndarray, train: bool) -> jnp.ndarray:
        out = nn.Dense(inputs.shape[-1])(inputs)
        return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(out)


@partial(jax.jit, static_argnames=("train",))
def _forward(key, x, train):
    model = BatchNormModel()
    variables = model.init(key, x, train=False)
    _, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
    variables = {"params": variables["params"], "batch_stats": updates["batch_stats"]}
    if train:
        y, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
        stats = updates["batch_stats"]["BatchNorm_0"]
    else:
        y = model.apply(variables, x, train=False)
        stats = variables["batch_stats"]["BatchNorm_0"]
    return y, {"mean": stats["mean"], "var": stats["var"]}


def batchnorm_train_eval_forward(seed, x, train):
    return _forward(jax.random.PRNGKey(int(seed)), jnp.asarray(x), train=bool(train >= 0.5))
