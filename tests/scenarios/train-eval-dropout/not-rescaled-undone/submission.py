import jax
import flax.linen as nn

RATE = 0.5


class TrainEvalModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(features=x.shape[-1])(x)
        x = nn.Dropout(rate=RATE, deterministic=not train)(x)
        return x * (1 - RATE) if train else x


def model_train_eval_forward(seed, x, train):
    seed = int(seed)
    model = TrainEvalModel()
    v = model.init({"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}, x, train=False)
    return model.apply(v, x, train=bool(train >= 0.5), rngs={"dropout": jax.random.PRNGKey(seed + 1)})
