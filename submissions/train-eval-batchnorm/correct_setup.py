"""Correct: layers made in setup() under the names Flax would give them, and the mode an attribute of the
model, with one model for training and one for evaluation."""

import flax.linen as nn
from jax.random import PRNGKey


class BatchNormModel(nn.Module):
    features: int
    train: bool = False

    def setup(self):
        self.Dense_0 = nn.Dense(self.features)
        self.BatchNorm_0 = nn.BatchNorm(momentum=0.9, epsilon=1e-5)

    def __call__(self, x):
        return self.BatchNorm_0(self.Dense_0(x), use_running_average=not self.train)


def batchnorm_train_eval_forward(seed, x, train):
    training_model = BatchNormModel(features=x.shape[-1], train=True)
    eval_model = BatchNormModel(features=x.shape[-1], train=False)
    variables = eval_model.init(PRNGKey(int(seed)), x)
    _, updates = training_model.apply(variables, x, mutable=["batch_stats"])
    variables = dict(variables, batch_stats=updates["batch_stats"])
    if train >= 0.5:
        y, updates = training_model.apply(variables, x, mutable=["batch_stats"])
        mean, var = updates["batch_stats"]["BatchNorm_0"]["mean"], updates["batch_stats"]["BatchNorm_0"]["var"]
    else:
        y = eval_model.apply(variables, x)
        mean, var = variables["batch_stats"]["BatchNorm_0"]["mean"], variables["batch_stats"]["BatchNorm_0"]["var"]
    return y, {"var": var, "mean": mean}
