"""Reference solution for the exercise ``train-eval-batchnorm``.

The grader runs this file in a trusted child process of its own to produce the expected outputs. It is
never importable from, nor mounted for, a submission.
"""

import flax.linen as nn
import jax


class BatchNormModel(nn.Module):
    """A Dense layer as wide as its input, then BatchNorm: batch statistics in training, running averages at
    evaluation."""

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(features=x.shape[-1])(x)
        # use_running_average is the opposite of train. momentum is the weight of the old running average:
        # new = 0.9 * old + 0.1 * batch statistic.
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(x)
        return x


def batchnorm_train_eval_forward(seed, x, train):
    train = bool(train >= 0.5)
    model = BatchNormModel()
    # Initialising never updates the statistics: batch_stats starts at mean 0, var 1.
    variables = model.init(jax.random.PRNGKey(int(seed)), x, train=False)

    # One training step, so that the running averages have moved: BatchNorm writes the new averages into
    # the mutable "batch_stats" collection, which apply returns beside the output.
    _, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
    variables = {"params": variables["params"], "batch_stats": updates["batch_stats"]}

    if train:
        y, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
        stats = updates["batch_stats"]["BatchNorm_0"]  # moved once more, by this call
    else:
        y = model.apply(variables, x, train=False)  # reads the running averages, changes nothing
        stats = variables["batch_stats"]["BatchNorm_0"]
    return y, {"mean": stats["mean"], "var": stats["var"]}
