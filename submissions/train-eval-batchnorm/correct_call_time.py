"""Correct: the flag given to BatchNorm at call time, a helper for the step, and numpy arrays returned."""

import flax.linen as nn
import jax
import numpy as np


class BatchNormModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(features=x.shape[-1])(x)
        norm = nn.BatchNorm(momentum=0.9, epsilon=1e-5)
        return norm(x, use_running_average=not train)


def train_step(model, variables, x):
    """Runs the model in training mode and returns its output and the variables with the new statistics."""
    y, new_state = model.apply(variables, x, train=True, mutable=["batch_stats"])
    return y, {**variables, **new_state}


def batchnorm_train_eval_forward(seed, x, train):
    model = BatchNormModel()
    variables = model.init(jax.random.PRNGKey(int(seed)), x, train=False)
    _, variables = train_step(model, variables, x)
    if train >= 0.5:
        y, variables = train_step(model, variables, x)
    else:
        y = model.apply(variables, x, train=False)
    stats = variables["batch_stats"]["BatchNorm_0"]
    return np.asarray(y), {"mean": np.asarray(stats["mean"]), "var": np.asarray(stats["var"])}
