"""The flag the wrong way round, written as a learner who makes batch_stats mutable in every call (so that
nothing raises) and reads the statistics from what apply returns."""

import flax.linen as nn
import jax


class BatchNormModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(features=x.shape[-1])(x)
        return nn.BatchNorm(momentum=0.9, epsilon=1e-5)(x, use_running_average=train)


def batchnorm_train_eval_forward(seed, x, train):
    model = BatchNormModel()
    variables = model.init(jax.random.PRNGKey(int(seed)), x, train=False)
    _, state = model.apply(variables, x, train=True, mutable=["batch_stats"])
    variables = {"params": variables["params"], **state}
    y, state = model.apply(variables, x, train=bool(train >= 0.5), mutable=["batch_stats"])
    stats = state["batch_stats"]["BatchNorm_0"]
    return y, {"mean": stats["mean"], "var": stats["var"]}
