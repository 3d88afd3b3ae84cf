import jax
import flax.linen as nn


class TrainEvalModel(nn.Module):
    @nn.compact
    def __call__(self, inputs, train: bool = False):
        out = nn.Dense(features=inputs.shape[-1])(inputs)
        return nn.Dropout(rate=0.5, deterministic=not train)(out)


def model_train_eval_forward(seed, x, train):
    is_training = bool(train >= 0.5)  # computed, but never handed to the model
    seed = int(seed)
    model = TrainEvalModel()
    params = model.init({"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}, x)
    return model.apply(params, x, rngs={"dropout": jax.random.PRNGKey(seed + 1)})
