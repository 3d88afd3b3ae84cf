import jax
import flax.linen as nn


class StochasticDepthBlock(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        y = x + nn.relu(nn.Dense(features=x.shape[-1])(x))
        return nn.Dropout(rate=0.25, deterministic=not train)(y)


def stochastic_depth_forward(seed, x, train):
    seed = int(seed)
    model = StochasticDepthBlock()
    v = model.init({"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}, x, train=False)
    return model.apply(v, x, train=bool(train >= 0.5), rngs={"dropout": jax.random.PRNGKey(seed + 1)})
