"""Correct, computed by hand: the Dense product as a broadcast and a sum (another summation order), and
the per-example mask drawn by Dropout itself on a column of ones, one per row, then used as a factor."""

import jax
import jax.numpy as jnp
from flax import linen as nn


class StochasticDepthBlock(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        dense = nn.Dense(features=x.shape[-1])
        dense(x)  # creates the parameters where the reference has them
        kernel = dense.variables["params"]["kernel"]
        bias = dense.variables["params"]["bias"]
        branch = jnp.maximum(jnp.sum(x[:, :, None] * kernel[None, :, :], axis=1) + bias, 0.0)
        # (batch, 1): 1 / 0.75 where the row keeps its branch, 0 where it drops it.
        factor = nn.Dropout(rate=0.25, deterministic=not train)(jnp.ones((x.shape[0], 1), x.dtype))
        return x + branch * factor


def stochastic_depth_forward(seed, x, train):
    seed = int(seed)
    block = StochasticDepthBlock()
    rngs = {"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}
    variables = block.init(rngs, x, train=False)
    return block.apply(variables, x, train=bool(train >= 0.5), rngs={"dropout": rngs["dropout"]})
