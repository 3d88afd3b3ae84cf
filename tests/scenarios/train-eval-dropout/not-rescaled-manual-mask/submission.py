import jax
import jax.numpy as jnp
import flax.linen as nn


class TrainEvalModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(features=x.shape[-1])(x)
        if train:
            keep = jax.random.bernoulli(self.make_rng("dropout"), 0.5, x.shape)
            x = jnp.where(keep, x, 0.0)  # masked, but never divided by the keep probability
        return x


def model_train_eval_forward(seed, x, train):
    seed = int(seed)
    model = TrainEvalModel()
    v = model.init({"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}, x, train=False)
    return model.apply(v, x, train=bool(train >= 0.5), rngs={"dropout": jax.random.PRNGKey(seed + 1)})
