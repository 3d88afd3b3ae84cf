import flax.linen as nn
import jax
import numpy as np

RATE = 0.3


class TrainEvalModel(nn.Module):
    @nn.compact
    def __call__(self, x, train):
        x = nn.Dense(features=x.shape[-1])(x)
        return nn.Dropout(rate=RATE, deterministic=not train)(x)


def model_train_eval_forward(seed, x, train):
    seed = int(seed)
    model = TrainEvalModel()
    variables = model.init({"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}, x, train=False)
    y = model.apply(variables, x, train=bool(train >= 0.5), rngs={"dropout": jax.random.PRNGKey(seed + 1)})
    return np.asarray(y, dtype=np.float64)
