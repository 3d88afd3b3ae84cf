"""Correct, with the layers made in an explicit setup(): their attribute names are the module paths the
compact version gets (Dense_0, Dropout_0), so the parameters and the mask are the same. Returns numpy."""

import jax
import numpy as np
from flax import linen as nn


class StochasticDepthBlock(nn.Module):
    features: int

    def setup(self):
        self.Dense_0 = nn.Dense(self.features)
        self.Dropout_0 = nn.Dropout(rate=0.25, broadcast_dims=(-1,))

    def __call__(self, x, train: bool):
        branch = nn.relu(self.Dense_0(x))
        return x + self.Dropout_0(branch, deterministic=not train)


def stochastic_depth_forward(seed, x, train):
    seed = int(seed)
    block = StochasticDepthBlock(features=x.shape[-1])
    keys = {"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}
    variables = block.init(keys, x, train=False)
    out = block.apply(variables, x, train=float(train) >= 0.5, rngs={"dropout": keys["dropout"]})
    return np.asarray(out)
