"""Batch statistics at evaluation, another way: the flag never reaches BatchNorm, every call is a training call
with mutable statistics, and the statistics come from what apply returns."""

import flax.linen as nn
import jax


class BatchNormModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(features=x.shape[-1])(x)
        return nn.BatchNorm(momentum=0.9, epsilon=1e-5)(x, use_running_average=False)


def batchnorm_train_eval_forward(seed, x, train):
    model = BatchNormModel()
    variables = model.init(jax.random.PRNGKey(int(seed)), x, train=False)
    for _ in range(2):  # the training step, then the call asked for
        y, updates = model.apply(variables, x, train=bool(train >= 0.5), mutable=["batch_stats"])
        variables = {"params": variables["params"], "batch_stats": updates["batch_stats"]}
    stats = variables["batch_stats"]["BatchNorm_0"]
    return y, {"mean": stats["mean"], "var": stats["var"]}
