"""Train and eval modes through a `train` flag.

Run `grader show train-eval-dropout` for the exercise, `grader hint train-eval-dropout` when stuck,
and `grader grade` (or `grader watch`) on this file to check it.
"""

import flax.linen as nn
import jax  # noqa: F401 - you will need it for the keys


class TrainEvalModel(nn.Module):
    """Dense(features=x.shape[-1]), then Dropout(rate=0.5) that is active only when training."""

    @nn.compact
    def __call__(self, x, train: bool):
        raise NotImplementedError("build the Dense and Dropout layers here")


def model_train_eval_forward(seed, x, train):
    """Initialise TrainEvalModel and apply it to x.

    seed:  a float holding a whole number; keys are PRNGKey(int(seed)) and PRNGKey(int(seed) + 1)
    x:     a 1-D float32 JAX array
    train: 1.0 for training, 0.0 for evaluation
    returns the model's output, a 1-D float32 array as long as x
    """
    raise NotImplementedError("write model_train_eval_forward")
