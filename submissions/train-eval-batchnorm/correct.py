"""A correct solution: the flag given to BatchNorm as an attribute, typed keys, the steps spelled out."""

import jax
from flax import linen as nn


class BatchNormModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        hidden = nn.Dense(x.shape[-1])(x)
        return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(hidden)


def batchnorm_train_eval_forward(seed, x, train):
    is_training = bool(train >= 0.5)
    model = BatchNormModel()
    variables = model.init(jax.random.key(int(seed)), x, train=False)

    # One training step: BatchNorm writes new running averages, which apply returns as updates.
    _, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
    variables = {"params": variables["params"], "batch_stats": updates["batch_stats"]}

    if is_training:
        y, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
        stats = updates["batch_stats"]["BatchNorm_0"]
    else:
        y = model.apply(variables, x, train=False)
        stats = variables["batch_stats"]["BatchNorm_0"]
    return y, {"mean": stats["mean"], "var": stats["var"]}
