"""Reference solution for the exercise ``train-eval-dropout``.

The grader runs this file in a trusted child process of its own to produce the expected outputs. It is
never importable from, nor mounted for, a submission.
"""

import flax.linen as nn
import jax


class TrainEvalModel(nn.Module):
    """A Dense layer as wide as its input, then Dropout that is active only in training."""

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(features=x.shape[-1])(x)
        x = nn.Dropout(rate=0.5, deterministic=not train)(x)
        return x


def model_train_eval_forward(seed, x, train):
    train = bool(train >= 0.5)
    seed = int(seed)
    model = TrainEvalModel()
    variables = model.init(
        {"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)},
        x,
        train=False,
    )
    return model.apply(variables, x, train=train, rngs={"dropout": jax.random.PRNGKey(seed + 1)})
