import jax
import flax.linen as nn


class DropBlock(nn.Module):
    @nn.compact
    def __call__(self, x, train):
        return nn.Dropout(rate=0.5, deterministic=not train)(x)


class TrainEvalModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(features=x.shape[-1])(x)
        return DropBlock()(x, train)


def model_train_eval_forward(seed, x, train):
    seed = int(seed)
    model = TrainEvalModel()
    v = model.init({"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}, x, train=False)
    return model.apply(v, x, train=bool(train >= 0.5), rngs={"dropout": jax.random.PRNGKey(seed + 1)})
