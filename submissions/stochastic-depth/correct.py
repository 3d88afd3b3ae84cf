"""A correct solution: Dropout's flag given at call time, typed keys."""

import jax
from flax import linen as nn


class StochasticDepthBlock(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        width = x.shape[-1]
        branch = nn.relu(nn.Dense(width)(x))
        branch = nn.Dropout(0.25, broadcast_dims=(-1,))(branch, deterministic=not train)
        return x + branch


def stochastic_depth_forward(seed, x, train):
    is_training = bool(train >= 0.5)
    seed = int(seed)
    params_key, dropout_key = jax.random.key(seed), jax.random.key(seed + 1)
    model = StochasticDepthBlock()
    variables = model.init({"params": params_key, "dropout": dropout_key}, x, train=False)
    return model.apply(variables, x, train=is_training, rngs={"dropout": dropout_key})
