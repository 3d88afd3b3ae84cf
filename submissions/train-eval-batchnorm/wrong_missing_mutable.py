"""A common mistake: apply in training without mutable=["batch_stats"], so Flax refuses to update it."""

import flax.linen as nn
import jax


class BatchNormModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(features=x.shape[-1])(x)
        return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(x)


def batchnorm_train_eval_forward(seed, x, train):
    model = BatchNormModel()
    variables = model.init(jax.random.PRNGKey(int(seed)), x, train=False)
    model.apply(variables, x, train=True)  # the training step
    y = model.apply(variables, x, train=bool(train >= 0.5))
    stats = variables["batch_stats"]["BatchNorm_0"]
    return y, {"mean": stats["mean"], "var": stats["var"]}
