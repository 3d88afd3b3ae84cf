"""A common mistake: momentum left out, so BatchNorm keeps Flax's default, 0.99."""

import flax.linen as nn
import jax


class BatchNormModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(features=x.shape[-1])(x)
        return nn.BatchNorm(use_running_average=not train, epsilon=1e-5)(x)


def batchnorm_train_eval_forward(seed, x, train):
    model = BatchNormModel()
    variables = model.init(jax.random.PRNGKey(int(seed)), x, train=False)
    _, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
    variables = {"params": variables["params"], "batch_stats": updates["batch_stats"]}
    if train >= 0.5:
        y, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
        stats = updates["batch_stats"]["BatchNorm_0"]
    else:
        y = model.apply(variables, x, train=False)
        stats = variables["batch_stats"]["BatchNorm_0"]
    return y, {"mean": stats["mean"], "var": stats["var"]}
