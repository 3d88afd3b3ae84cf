"""A common mistake: Dropout applied to the block's output x + branch, so a dropped row loses x too."""

import flax.linen as nn
import jax


class StochasticDepthBlock(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        branch = nn.relu(nn.Dense(features=x.shape[-1])(x))
        out = x + branch
        return nn.Dropout(rate=0.25, broadcast_dims=(-1,), deterministic=not train)(out)


def stochastic_depth_forward(seed, x, train):
    seed = int(seed)
    model = StochasticDepthBlock()
    keys = {"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}
    variables = model.init(keys, x, train=False)
    return model.apply(variables, x, train=bool(train >= 0.5), rngs={"dropout": keys["dropout"]})
