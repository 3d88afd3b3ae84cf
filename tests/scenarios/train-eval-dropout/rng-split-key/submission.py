import jax
import flax.linen as nn


class TrainEvalModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        return nn.Dropout(rate=0.5, deterministic=not train)(nn.Dense(features=x.shape[-1])(x))


def model_train_eval_forward(seed, x, train):
    seed = int(seed)
    drop_key, _ = jax.random.split(jax.random.PRNGKey(seed + 1))
    model = TrainEvalModel()
    variables = model.init({"params": jax.random.PRNGKey(seed), "dropout": drop_key}, x, train=False)
    return model.apply(variables, x, train=bool(train >= 0.5), rngs={"dropout": drop_key})
