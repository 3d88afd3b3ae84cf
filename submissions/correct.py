"""A correct solution, written with typed keys and a module-level helper."""

import jax
from flax import linen as nn


class TrainEvalModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        width = x.shape[-1]
        hidden = nn.Dense(width)(x)
        return nn.Dropout(0.5)(hidden, deterministic=not train)


def model_train_eval_forward(seed, x, train):
    is_training = bool(train >= 0.5)
    seed = int(seed)
    params_key, dropout_key = jax.random.key(seed), jax.random.key(seed + 1)
    model = TrainEvalModel()
    variables = model.init({"params": params_key, "dropout": dropout_key}, x, train=False)
    return model.apply(variables, x, train=is_training, rngs={"dropout": dropout_key})
