"""A common mistake: both streams split from one key, so the parameters come from another key."""

import flax.linen as nn
import jax


class StochasticDepthBlock(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        branch = nn.relu(nn.Dense(features=x.shape[-1])(x))
        branch = nn.Dropout(rate=0.25, broadcast_dims=(-1,), deterministic=not train)(branch)
        return x + branch


def stochastic_depth_forward(seed, x, train):
    params_key, dropout_key = jax.random.split(jax.random.PRNGKey(int(seed)))
    model = StochasticDepthBlock()
    variables = model.init({"params": params_key, "dropout": dropout_key}, x, train=False)
    return model.apply(variables, x, train=bool(train >= 0.5), rngs={"dropout": dropout_key})
