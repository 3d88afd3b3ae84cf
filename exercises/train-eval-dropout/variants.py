"""Variants of the reference, each making one known mistake (see mistakes.toml).

The grader runs these in a trusted child, on the same cases as the reference, and reports the mistake
whose outputs a submission's outputs equal. Each function has the entry point's signature.
"""

import flax.linen as nn
import jax
from jax.random import PRNGKey


class _Model(nn.Module):
    """The reference model with the Dropout's switch and rate as attributes (same module paths)."""

    rate: float = 0.5
    flag: str = "not train"  # how deterministic follows train: "not train", "train", "always", "never"

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(features=x.shape[-1], name="Dense_0")(x)
        deterministic = {"not train": not train, "train": train, "always": True, "never": False}[self.flag]
        return nn.Dropout(rate=self.rate, deterministic=deterministic, name="Dropout_0")(x)


def _forward(seed, x, train, *, flag="not train", params_key=None, dropout_key=None, rescale=True):
    seed = int(seed)
    train = bool(train >= 0.5)
    params_key = PRNGKey(seed) if params_key is None else params_key
    dropout_key = PRNGKey(seed + 1) if dropout_key is None else dropout_key
    model = _Model(flag=flag)
    variables = model.init({"params": params_key, "dropout": dropout_key}, x, train=False)
    y = model.apply(variables, x, train=train, rngs={"dropout": dropout_key})
    if train and not rescale:  # the kept units as they were before Dropout scaled them by 1 / (1 - rate)
        y = y * 0.5
    return y


def deterministic_inverted(seed, x, train):
    return _forward(seed, x, train, flag="train")


def dropout_never_active(seed, x, train):
    return _forward(seed, x, train, flag="always")


def dropout_active_at_eval(seed, x, train):
    return _forward(seed, x, train, flag="never")


def dropout_key_is_seed(seed, x, train):
    return _forward(seed, x, train, dropout_key=PRNGKey(int(seed)))


def dropout_key_split(seed, x, train):
    return _forward(seed, x, train, dropout_key=jax.random.split(PRNGKey(int(seed) + 1))[0])


def params_key_plus_one(seed, x, train):
    return _forward(seed, x, train, params_key=PRNGKey(int(seed) + 1))


def streams_swapped(seed, x, train):
    s = int(seed)
    return _forward(seed, x, train, params_key=PRNGKey(s + 1), dropout_key=PRNGKey(s))


def params_key_split(seed, x, train):
    params_key, dropout_key = jax.random.split(PRNGKey(int(seed)))
    return _forward(seed, x, train, params_key=params_key, dropout_key=dropout_key)


def dropout_not_rescaled(seed, x, train):
    return _forward(seed, x, train, rescale=False)
