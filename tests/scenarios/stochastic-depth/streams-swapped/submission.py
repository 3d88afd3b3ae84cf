import jax
import flax.linen as nn


class StochasticDepthBlock(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        branch = nn.relu(nn.Dense(features=x.shape[-1])(x))
        branch = nn.Dropout(rate=0.25, broadcast_dims=(-1,), deterministic=not train)(branch)
        return x + branch


def stochastic_depth_forward(seed, x, train):
    s = int(seed)
    rngs = {"dropout": jax.random.PRNGKey(s), "params": jax.random.PRNGKey(s + 1)}  # the two keys swapped
    block = StochasticDepthBlock()
    v = block.init(rngs, x, train=False)
    return block.apply(v, x, train=bool(train >= 0.5), rngs={"dropout": rngs["dropout"]})
