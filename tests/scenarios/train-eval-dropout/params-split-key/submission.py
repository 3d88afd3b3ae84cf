import jax
import jax.numpy as jnp
import flax.linen as nn


class TrainEvalModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(features=x.shape[-1])(x)
        return nn.Dropout(rate=0.5, deterministic=not train)(x)


def model_train_eval_forward(seed, x, train):
    root = jax.random.PRNGKey(int(seed))
    k_params, k_dropout = jax.random.split(root)
    model = TrainEvalModel()
    variables = model.init({"params": k_params, "dropout": k_dropout}, jnp.asarray(x), train=False)
    return model.apply(variables, x, train=bool(train >= 0.5), rngs={"dropout": k_dropout})
