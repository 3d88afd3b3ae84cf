import jax
import jax.numpy as jnp
import flax.linen as nn


class StochasticDepthBlock(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        branch = nn.relu(nn.Dense(features=x.shape[-1])(x))
        if not train:
            return x + branch
        survive = jax.random.bernoulli(self.make_rng("dropout"), p=0.75)  # one draw, no shape
        return x + survive * branch


def stochastic_depth_forward(seed, x, train):
    seed = int(seed)
    model = StochasticDepthBlock()
    v = model.init({"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}, x, train=False)
    return model.apply(v, x, train=bool(train >= 0.5), rngs={"dropout": jax.random.PRNGKey(seed + 1)})
