"""Correct, with the Dense layer's product written as a broadcast and a sum."""

import jax
import jax.numpy as jnp
from flax import linen as nn


class TrainEvalModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        dense = nn.Dense(features=x.shape[-1])
        dense(x)  # creates the parameters where the reference has them
        kernel = dense.variables["params"]["kernel"]
        bias = dense.variables["params"]["bias"]
        hidden = jnp.sum(x[..., :, None] * kernel, axis=-2) + bias
        return nn.Dropout(rate=0.5, deterministic=not train)(hidden)


def model_train_eval_forward(seed, x, train):
    seed = int(seed)
    model = TrainEvalModel()
    keys = {"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}
    variables = model.init(keys, x, train=False)
    return model.apply(variables, x, train=bool(train >= 0.5), rngs={"dropout": jax.random.PRNGKey(seed + 1)})
