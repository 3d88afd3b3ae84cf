"""A common mistake: use_running_average=train, the flag passed through as it is."""

import flax.linen as nn
import jax


class BatchNormModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(features=x.shape[-1])(x)
        x = nn.BatchNorm(use_running_average=train, momentum=0.9, epsilon=1e-5)(x)
        return x


def batchnorm_train_eval_forward(seed, x, train):
    train = bool(train >= 0.5)
    model = BatchNormModel()
    variables = model.init(jax.random.PRNGKey(int(seed)), x, train=False)
    _, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
    variables = {"params": variables["params"], "batch_stats": updates["batch_stats"]}
    if train:
        y, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
        stats = updates["batch_stats"]["BatchNorm_0"]
    else:
        y = model.apply(variables, x, train=False)
        stats = variables["batch_stats"]["BatchNorm_0"]
    return y, {"mean": stats["mean"], "var": stats["var"]}
