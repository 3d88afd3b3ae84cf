import jax
import flax.linen as nn


class TrainEvalModel(nn.Module):
    drop: float = 0.2

    @nn.compact
    def __call__(self, x, train: bool):
        y = nn.Dense(x.shape[-1])(x)
        return nn.Dropout(self.drop)(y, deterministic=not train)


def model_train_eval_forward(seed, x, train):
    s = int(seed)
    m = TrainEvalModel()
    v = m.init({"params": jax.random.key(s), "dropout": jax.random.key(s + 1)}, x, train=False)
    return m.apply(v, x, train=train >= 0.5, rngs={"dropout": jax.random.key(s + 1)})
