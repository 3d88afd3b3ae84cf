import flax.linen as nn
import jax
import numpy as np

RATE = 0.5


class StochasticDepthBlock(nn.Module):
    @nn.compact
    def __call__(self, x, train):
        branch = nn.relu(nn.Dense(features=x.shape[-1])(x))
        return x + nn.Dropout(rate=RATE, broadcast_dims=(-1,), deterministic=not train)(branch)


def stochastic_depth_forward(seed, x, train):
    seed = int(seed)
    model = StochasticDepthBlock()
    variables = model.init({"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}, x, train=False)
    y = model.apply(variables, x, train=bool(train >= 0.5), rngs={"dropout": jax.random.PRNGKey(seed + 1)})
    return np.asarray(y, dtype=np.float64)
