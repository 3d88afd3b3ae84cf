"""Reference solution for the exercise ``stochastic-depth``.

The grader runs this file in a trusted child process of its own to produce the expected outputs. It is
never importable from, nor mounted for, a submission.
"""

import flax.linen as nn
import jax

DROP_RATE = 0.25  # the probability of skipping the branch; a kept branch is scaled by 1 / (1 - 0.25)


class StochasticDepthBlock(nn.Module):
    """A residual block whose branch is skipped at random, one draw per example, only in training."""

    @nn.compact
    def __call__(self, x, train: bool):
        branch = nn.relu(nn.Dense(features=x.shape[-1])(x))
        # broadcast_dims=(-1,): the mask has shape (batch, 1), so each row's whole branch is dropped or kept.
        branch = nn.Dropout(rate=DROP_RATE, broadcast_dims=(-1,), deterministic=not train)(branch)
        return x + branch


def stochastic_depth_forward(seed, x, train):
    train = bool(train >= 0.5)
    seed = int(seed)
    model = StochasticDepthBlock()
    variables = model.init(
        {"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)},
        x,
        train=False,
    )
    return model.apply(variables, x, train=train, rngs={"dropout": jax.random.PRNGKey(seed + 1)})
