"""Correct, compiled: the forward pass under jax.jit with the train flag static, and Dropout's flag
given as an attribute when the layer is made."""

from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp


class StochasticDepthBlock(nn.Module):
    @nn.compact
    def __call__(self, inputs: jnp.ndarray, train: bool) -> jnp.ndarray:
        residual = nn.Dense(features=inputs.shape[-1])(inputs)
        residual = nn.relu(residual)
        drop_path = nn.Dropout(rate=0.25, broadcast_dims=(1,), deterministic=not train)
        return inputs + drop_path(residual)


@partial(jax.jit, static_argnames=("train",))
def _forward(params_key, dropout_key, x, train):
    block = StochasticDepthBlock()
    variables = block.init({"params": params_key, "dropout": dropout_key}, x, train=False)
    return block.apply(variables, x, train=train, rngs={"dropout": dropout_key})


def stochastic_depth_forward(seed, x, train):
    s = int(seed)
    return _forward(jax.random.PRNGKey(s), jax.random.PRNGKey(s + 1), jnp.asarray(x), train=bool(train >= 0.5))
