from functools import partial

import jax
import jax.numpy as jnp
import flax.linen as nn


class StochasticDepthBlock(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        h = nn.relu(nn.Dense(x.shape[-1])(x))
        h = nn.Dropout(0.25, broadcast_dims=(-1,))(h, deterministic=train)
        return x + h


@partial(jax.jit, static_argnums=(3,))
def _run(k_params, k_drop, x, training):
    block = StochasticDepthBlock()
    v = block.init({"params": k_params, "dropout": k_drop}, x, train=False)
    return block.apply(v, x, train=training, rngs={"dropout": k_drop})


def stochastic_depth_forward(seed, x, train):
    s = int(seed)
    return _run(jax.random.PRNGKey(s), jax.random.PRNGKey(s + 1), jnp.asarray(x), bool(train >= 0.5))
