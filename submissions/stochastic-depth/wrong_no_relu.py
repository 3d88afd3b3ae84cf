"""A common mistake: the ReLU left out of the branch."""

import flax.linen as nn
import jax


class StochasticDepthBlock(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        branch = nn.Dense(features=x.shape[-1])(x)
        branch = nn.Dropout(rate=0.25, broadcast_dims=(-1,), deterministic=not train)(branch)
        return x + branch


def stochastic_depth_forward(seed, x, train):
    seed = int(seed)
    model = StochasticDepthBlock()
    keys = {"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}
    variables = model.init(keys, x, train=False)
    return model.apply(variables, x, train=bool(train >= 0.5), rngs={"dropout": keys["dropout"]})
