import flax.linen as fnn
from jax.random import PRNGKey


class TrainEvalModel(fnn.Module):
    @fnn.compact
    def __call__(self, x, train):
        x = fnn.Dense(x.shape[0], name="Dense_0")(x)
        x = fnn.Dropout(0.5, deterministic=not train, name="Dropout_0")(x)
        return x


def model_train_eval_forward(seed, x, train):
    seed = int(float(seed))
    training = True if train >= 0.5 else False
    params = TrainEvalModel().init({"params": PRNGKey(seed), "dropout": PRNGKey(seed + 1)}, x, train=False)
    return TrainEvalModel().apply(params, x, train=training, rngs=dict(dropout=PRNGKey(seed + 1)))
