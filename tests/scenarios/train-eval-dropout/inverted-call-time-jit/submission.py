from functools import partial

import jax
import flax.linen as nn


class TrainEvalModel(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        h = nn.Dense(x.shape[-1])(x)
        return nn.Dropout(rate=0.5)(h, deterministic=train)


@partial(jax.jit, static_argnames="training")
def _run(x, k_params, k_drop, training):
    net = TrainEvalModel()
    params = net.init({"params": k_params, "dropout": k_drop}, x, train=False)
    return net.apply(params, x, train=training, rngs={"dropout": k_drop})


def model_train_eval_forward(seed, x, train):
    s = int(seed)
    return _run(x, jax.random.key(s), jax.random.key(s + 1), training=bool(train >= 0.5))
