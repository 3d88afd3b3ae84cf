"""BatchNorm: batch statistics in training, running averages at evaluation.

Run `grader show train-eval-batchnorm` for the exercise, `grader hint train-eval-batchnorm` when stuck,
and `grader grade` (or `grader watch`) on this file to check it.
"""

import flax.linen as nn
import jax  # noqa: F401 - you will need it for the key


class BatchNormModel(nn.Module):
    """Dense(features=x.shape[-1]), then BatchNorm(momentum=0.9, epsilon=1e-5): the batch's statistics in
    training, the running averages at evaluation."""

    @nn.compact
    def __call__(self, x, train: bool):
        raise NotImplementedError("build the Dense and BatchNorm layers here")


def batchnorm_train_eval_forward(seed, x, train):
    """Initialise BatchNormModel, take one training step, then apply it to x in the mode asked for.

    seed:  a float holding a whole number; the key is PRNGKey(int(seed))
    x:     a 2-D float32 JAX array, (batch, features)
    train: 1.0 for training, 0.0 for evaluation
    returns (y, {"mean": ..., "var": ...}): the model's output, shaped like x, and BatchNorm's statistics,
            one entry per feature (in training those the call wrote, at evaluation those it read)
    """
    # TODO: init with train=False
    # TODO: one training step with mutable=["batch_stats"]; carry its statistics into the variables
    # TODO: apply in the mode asked for, and take the statistics from the right place
    raise NotImplementedError("write batchnorm_train_eval_forward")
