import jax
import jax.numpy as jnp
import flax.linen as nn


class StochasticDepthBlock(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        branch = nn.relu(nn.Dense(features=x.shape[-1])(x))
        branch = branch / jnp.linalg.norm(branch, axis=-1, keepdims=True)  # NaN where the branch is all 0
        branch = nn.Dropout(rate=0.25, broadcast_dims=(-1,), deterministic=not train)(branch)
        return x + branch


def stochastic_depth_forward(seed, x, train):
    seed = int(seed)
    model = StochasticDepthBlock()
    v = model.init({"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}, x, train=False)
    return model.apply(v, x, train=bool(train >= 0.5), rngs={"dropout": jax.random.PRNGKey(seed + 1)})
