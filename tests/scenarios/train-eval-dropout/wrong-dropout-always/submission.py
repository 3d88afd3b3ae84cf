import flax.linen as nn
import jax


class TrainEvalModel(nn.Module):
    @nn.compact
    def __call__(self, x, train):
        x = nn.Dense(features=x.shape[-1])(x)
        x = nn.Dropout(rate=0.5, deterministic=False)(x)
        return x


def model_train_eval_forward(seed, x, train):
    seed = int(seed)
    model = TrainEvalModel()
    variables = model.init({"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}, x, train=False)
    return model.apply(variables, x, train=train >= 0.5, rngs={"dropout": jax.random.PRNGKey(seed + 1)})
