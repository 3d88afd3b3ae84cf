"""Correct, with BatchNorm written by hand in jnp: the Dense layer's parameters from Flax, then the
statistics and the normalisation computed directly (another summation order: a two-pass variance, the
product as a broadcast and a sum), compiled with jax.jit."""

from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp

MOMENTUM, EPSILON = 0.9, 1e-5


class BatchNormModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(features=x.shape[-1])(x)
        return nn.BatchNorm(use_running_average=not train, momentum=MOMENTUM, epsilon=EPSILON)(x)


def batch_moments(h):
    mean = jnp.sum(h, axis=0) / h.shape[0]
    var = jnp.sum((h - mean) ** 2, axis=0) / h.shape[0]
    return mean, var


@partial(jax.jit, static_argnames=("train",))
def _forward(kernel, bias, x, train):
    h = jnp.sum(x[:, :, None] * kernel[None, :, :], axis=1) + bias
    mean, var = batch_moments(h)
    # The running averages start at 0 and 1; the training step moves them once.
    run_mean = MOMENTUM * jnp.zeros_like(mean) + (1 - MOMENTUM) * mean
    run_var = MOMENTUM * jnp.ones_like(var) + (1 - MOMENTUM) * var
    if train:
        y = (h - mean) / jnp.sqrt(var + EPSILON)
        new_mean = MOMENTUM * run_mean + (1 - MOMENTUM) * mean
        new_var = MOMENTUM * run_var + (1 - MOMENTUM) * var
        return y, {"mean": new_mean, "var": new_var}
    y = (h - run_mean) * jax.lax.rsqrt(run_var + EPSILON)
    return y, {"mean": run_mean, "var": run_var}


def batchnorm_train_eval_forward(seed, x, train):
    params = BatchNormModel().init(jax.random.PRNGKey(int(seed)), x, train=False)["params"]
    dense = params["Dense_0"]
    return _forward(dense["kernel"], dense["bias"], x, train=bool(train >= 0.5))
