import jax
import flax.linen as nn


class TrainEvalModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(features=x.shape[-1])(x)
        return nn.Dropout(rate=0.5, deterministic=not train)(x)


def model_train_eval_forward(seed, x, train):
    a, b = jax.random.PRNGKey(int(seed)), jax.random.PRNGKey(int(seed) + 1)
    model = TrainEvalModel()
    variables = model.init({"params": b, "dropout": a}, x, train=False)
    return model.apply(variables, x, train=bool(train >= 0.5), rngs={"dropout": a})
