"""A common mistake: x overwritten by the branch, so the residual is lost."""

import flax.linen as nn
import jax


class StochasticDepthBlock(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(features=x.shape[-1])(x)
        x = nn.relu(x)
        x = nn.Dropout(rate=0.25, broadcast_dims=(-1,), deterministic=not train)(x)
        return x


def stochastic_depth_forward(seed, x, train):
    seed = int(seed)
    model = StochasticDepthBlock()
    keys = {"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}
    variables = model.init(keys, x, train=False)
    return model.apply(variables, x, train=bool(train >= 0.5), rngs={"dropout": keys["dropout"]})
