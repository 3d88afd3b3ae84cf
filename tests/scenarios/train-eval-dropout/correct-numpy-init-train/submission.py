import jax
import numpy as np
import flax.linen as nn


class TrainEvalModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(features=x.shape[-1])(x)
        return nn.Dropout(rate=0.5, deterministic=not train)(x)


def model_train_eval_forward(seed, x, train):
    seed = int(seed)
    rngs = {"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}
    model = TrainEvalModel()
    variables = model.init(rngs, x, train=True)  # init mode does not change the parameters
    out = model.apply(variables, x, train=float(train) >= 0.5, rngs={"dropout": rngs["dropout"]})
    return np.asarray(out)
