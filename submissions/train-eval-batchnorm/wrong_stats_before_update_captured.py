"""The statistics from before the update, another way: captured before the call that moves them."""

from functools import partial

import flax.linen as nn
import jax


class BatchNormModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(features=x.shape[-1])(x)
        return nn.BatchNorm(momentum=0.9, epsilon=1e-5)(x, use_running_average=not train)


@partial(jax.jit, static_argnames="train")
def forward(variables, x, train):
    stats = variables["batch_stats"]["BatchNorm_0"]
    if train:
        y, variables = BatchNormModel().apply(variables, x, train=True, mutable=["batch_stats"])
    else:
        y = BatchNormModel().apply(variables, x, train=False)
    return y, {"mean": stats["mean"], "var": stats["var"]}


def batchnorm_train_eval_forward(seed, x, train):
    variables = BatchNormModel().init(jax.random.PRNGKey(int(seed)), x, train=False)
    _, stats = BatchNormModel().apply(variables, x, train=True, mutable=["batch_stats"])
    variables = {"params": variables["params"], "batch_stats": stats["batch_stats"]}
    return forward(variables, x, train=bool(train >= 0.5))
