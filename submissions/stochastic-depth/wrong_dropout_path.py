"""A common mistake: the Dropout inside a DropPath submodule of its own. Flax folds the module path into the
dropout stream, so the mask differs from the expected one although the key is right."""

import flax.linen as nn
import jax


class DropPath(nn.Module):
    rate: float

    @nn.compact
    def __call__(self, x, deterministic: bool):
        return nn.Dropout(rate=self.rate, broadcast_dims=(-1,))(x, deterministic=deterministic)


class StochasticDepthBlock(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        branch = nn.relu(nn.Dense(features=x.shape[-1])(x))
        return x + DropPath(rate=0.25)(branch, deterministic=not train)


def stochastic_depth_forward(seed, x, train):
    seed = int(seed)
    model = StochasticDepthBlock()
    keys = {"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}
    variables = model.init(keys, x, train=False)
    return model.apply(variables, x, train=bool(train >= 0.5), rngs={"dropout": keys["dropout"]})
