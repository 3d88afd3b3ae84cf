import jax
import numpy as np
import flax.linen as nn


class TrainEvalModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        return nn.Dropout(0.5, deterministic=not train)(nn.Dense(x.shape[-1])(x))


def model_train_eval_forward(seed, x, train):
    s = int(seed)
    m = TrainEvalModel()
    v = m.init({"params": jax.random.PRNGKey(s), "dropout": jax.random.PRNGKey(s + 1)}, x, train=False)
    return np.asarray(m.apply(v, x, train=bool(train >= 0.5), rngs={"dropout": jax.random.PRNGKey(s + 1)})).astype(
        np.complex64
    )
