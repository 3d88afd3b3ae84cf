"""Normalised over the wrong axis, by hand: the statistics taken over the last axis, each row's features."""

import flax.linen as nn
import jax
import jax.numpy as jnp


class RunningBatchNorm(nn.Module):
    momentum: float = 0.9
    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x, train: bool):
        mean = self.variable("batch_stats", "mean", lambda: jnp.zeros(x.shape[:-1] + (1,)))
        var = self.variable("batch_stats", "var", lambda: jnp.ones(x.shape[:-1] + (1,)))
        if train:
            batch_mean = jnp.mean(x, axis=-1, keepdims=True)
            batch_var = jnp.var(x, axis=-1, keepdims=True)
            if not self.is_initializing():
                mean.value = self.momentum * mean.value + (1 - self.momentum) * batch_mean
                var.value = self.momentum * var.value + (1 - self.momentum) * batch_var
            return (x - batch_mean) / jnp.sqrt(batch_var + self.epsilon)
        return (x - mean.value) / jnp.sqrt(var.value + self.epsilon)


class BatchNormModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(features=x.shape[-1])(x)
        return RunningBatchNorm(name="BatchNorm_0")(x, train)


def batchnorm_train_eval_forward(seed, x, train):
    model = BatchNormModel()
    variables = model.init(jax.random.PRNGKey(int(seed)), x, train=False)
    _, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
    variables = {"params": variables["params"], "batch_stats": updates["batch_stats"]}
    if train >= 0.5:
        y, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
        stats = updates["batch_stats"]["BatchNorm_0"]
    else:
        y = model.apply(variables, x, train=False)
        stats = variables["batch_stats"]["BatchNorm_0"]
    return y, {"mean": stats["mean"], "var": stats["var"]}
