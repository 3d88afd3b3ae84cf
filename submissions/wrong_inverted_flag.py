"""A common mistake: deterministic=train, so dropout runs at evaluation and not in training."""

import flax.linen as nn
import jax


class TrainEvalModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(features=x.shape[-1])(x)
        x = nn.Dropout(rate=0.5, deterministic=train)(x)
        return x


def model_train_eval_forward(seed, x, train):
    seed = int(seed)
    model = TrainEvalModel()
    rngs = {"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}
    variables = model.init(rngs, x, train=False)
    return model.apply(variables, x, train=bool(train >= 0.5), rngs={"dropout": jax.random.PRNGKey(seed + 1)})
