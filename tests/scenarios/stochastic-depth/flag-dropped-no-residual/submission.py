import jax
import flax.linen as nn


class StochasticDepthBlock(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        h = nn.relu(nn.Dense(features=x.shape[-1])(x))
        return nn.Dropout(rate=0.25, broadcast_dims=(-1,))(h, deterministic=not train)


def stochastic_depth_forward(seed, x, train):
    seed = int(seed)
    block = StochasticDepthBlock()
    variables = block.init({"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}, x)
    return block.apply(variables, x, rngs={"dropout": jax.random.PRNGKey(seed + 1)})  # train never passed
