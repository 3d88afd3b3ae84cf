"""Another momentum, written by a learner used to PyTorch, where momentum=0.1 is the weight of the new value."""

import flax.linen as nn
import jax
import jax.numpy as jnp

BN_MOMENTUM = 0.1  # as in torch.nn.BatchNorm1d


class BatchNormModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(features=x.shape[-1])(x)
        return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=1e-5)(x)


def batchnorm_train_eval_forward(seed, x, train):
    model = BatchNormModel()
    x = jnp.asarray(x)
    state = model.init(jax.random.PRNGKey(int(seed)), x, train=False)
    _, new = model.apply(state, x, train=True, mutable=["batch_stats"])
    state = {"params": state["params"], "batch_stats": new["batch_stats"]}
    if train >= 0.5:
        y, new = model.apply(state, x, train=True, mutable=["batch_stats"])
        return y, {k: new["batch_stats"]["BatchNorm_0"][k] for k in ("mean", "var")}
    y = model.apply(state, x, train=False)
    return y, {k: state["batch_stats"]["BatchNorm_0"][k] for k in ("mean", "var")}
