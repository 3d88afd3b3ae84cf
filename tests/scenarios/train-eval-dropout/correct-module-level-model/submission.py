import jax
import jax.numpy as jnp
import flax.linen as nn


class TrainEvalModel(nn.Module):
    @nn.compact
    def __call__(self, x, train):
        y = nn.Dense(features=x.shape[-1])(x)
        y = nn.Dropout(rate=0.5, deterministic=not train)(y)
        return y


MODEL = TrainEvalModel()


def _keys(seed):
    return {"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}


def model_train_eval_forward(seed, x, train):
    seed = int(seed)
    is_train = bool(jnp.asarray(train) >= 0.5)
    x = jnp.asarray(x, dtype=jnp.float32)
    variables = MODEL.init(_keys(seed), x, train=False)
    out = MODEL.apply(variables, x, train=is_train, rngs={"dropout": _keys(seed)["dropout"]})
    return jnp.array(out)
