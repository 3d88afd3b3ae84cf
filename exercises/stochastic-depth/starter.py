"""Stochastic depth: a residual branch skipped per example in training.

Run `grader show stochastic-depth` for the exercise, `grader hint stochastic-depth` when stuck,
and `grader grade` (or `grader watch`) on this file to check it.
"""

import flax.linen as nn
import jax  # noqa: F401 - you will need it for the keys


class StochasticDepthBlock(nn.Module):
    """x + branch, where branch = relu(Dense(x)) is skipped at random per example, only in training."""

    @nn.compact
    def __call__(self, x, train: bool):
        # TODO: branch = relu of a Dense layer as wide as x's last axis
        # TODO: Dropout(rate=0.25) on the branch, one draw per example, active only when training
        # TODO: return the residual sum
        raise NotImplementedError("build the residual block here")


def stochastic_depth_forward(seed, x, train):
    """Initialise StochasticDepthBlock and apply it to x.

    seed:  a float holding a whole number; keys are PRNGKey(int(seed)) and PRNGKey(int(seed) + 1)
    x:     a 2-D float32 JAX array, (batch, features)
    train: 1.0 for training, 0.0 for evaluation
    returns the block's output, a float32 array of the shape of x
    """
    raise NotImplementedError("write stochastic_depth_forward")
