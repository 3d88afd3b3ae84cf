import jax
from flax import linen as nn


class StochasticDepthBlock(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        branch = nn.relu(nn.Dense(features=x.shape[-1])(x))
        branch = nn.Dropout(rate=0.25, broadcast_dims=(-1,), deterministic=not train)(branch)
        return x + branch


def stochastic_depth_forward(seed, x, train):
    seed = int(seed)
    block = StochasticDepthBlock()
    rngs = {"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}
    variables = block.init(rngs, x, train=False)
    return block.apply(variables, x, train=True, rngs={"dropout": rngs["dropout"]})  # the flag is ignored
