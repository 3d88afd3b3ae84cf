"""A common mistake: a hand-made per-example mask, but kept branches are not divided by 0.75."""

import flax.linen as nn
import jax
import jax.numpy as jnp


class StochasticDepthBlock(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        branch = nn.relu(nn.Dense(features=x.shape[-1])(x))
        if train:
            keep = jax.random.bernoulli(self.make_rng("dropout"), 0.75, (x.shape[0], 1))
            branch = jnp.where(keep, branch, 0.0)
        return x + branch


def stochastic_depth_forward(seed, x, train):
    seed = int(seed)
    model = StochasticDepthBlock()
    keys = {"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}
    variables = model.init(keys, x, train=False)
    return model.apply(variables, x, train=bool(train >= 0.5), rngs={"dropout": keys["dropout"]})
