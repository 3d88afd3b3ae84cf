import jax
from flax import linen as nn


class TrainEvalModel(nn.Module):
    @nn.compact
    def __call__(self, x, train):
        x = nn.Dense(x.shape[-1])(x)
        return nn.Dropout(0.5, deterministic=not train)(x)


def model_train_eval_forward(seed, x, train):
    seed = int(seed)
    keys = {"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}
    model = TrainEvalModel()
    variables = model.init(keys, x, train=False)
    return model.apply(variables, x, train=True, rngs={"dropout": keys["dropout"]})
