import jax
from flax import linen as nn


class TrainEvalModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(x.shape[-1])(x)
        return nn.Dropout(rate=0.5, deterministic=True)(x)


def model_train_eval_forward(seed, x, train):
    seed = int(seed)
    m = TrainEvalModel()
    v = m.init({"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}, x, train=False)
    return m.apply(v, x, train=train >= 0.5, rngs={"dropout": jax.random.PRNGKey(seed + 1)})
