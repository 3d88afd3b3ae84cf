from functools import partial

import jax
import jax.numpy as jnp
import flax.linen as nn


class TrainEvalModel(nn.Module):
    @nn.compact
    def __call__(self, inputs: jnp.ndarray, train: bool) -> jnp.ndarray:
        y = nn.Dense(inputs.shape[-1], name=None)(inputs)
        y = nn.Dropout(rate=0.5)(y, deterministic=not train)
        return y


@partial(jax.jit, static_argnames=("train",))
def _forward(params_key, dropout_key, x, train):
    model = TrainEvalModel()
    variables = model.init({"params": params_key, "dropout": dropout_key}, x, train=False)
    return model.apply(variables, x, train=train, rngs={"dropout": dropout_key})


def model_train_eval_forward(seed, x, train):
    s = int(seed)
    return _forward(jax.random.PRNGKey(s), jax.random.PRNGKey(s + 1), jnp.asarray(x), train=bool(train >= 0.5))
