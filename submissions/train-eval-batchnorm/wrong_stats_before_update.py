"""A common mistake: the statistics are read from the variables in both modes, so in training they are those
from before the update."""

import flax.linen as nn
import jax


class BatchNormModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(features=x.shape[-1])(x)
        return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(x)


def batchnorm_train_eval_forward(seed, x, train):
    train = bool(train >= 0.5)
    model = BatchNormModel()
    variables = model.init(jax.random.PRNGKey(int(seed)), x, train=False)
    _, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
    variables = {"params": variables["params"], "batch_stats": updates["batch_stats"]}
    if train:
        y, _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
    else:
        y = model.apply(variables, x, train=False)
    stats = variables["batch_stats"]["BatchNorm_0"]
    return y, {"mean": stats["mean"], "var": stats["var"]}
