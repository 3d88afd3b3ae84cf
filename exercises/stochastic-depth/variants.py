"""Variants of the reference, each making one known mistake (see mistakes.toml).

The grader runs these in a trusted child, on the same cases as the reference, and reports the mistake
whose outputs a submission's outputs equal. Each function has the entry point's signature. The file is
self-contained (jax, flax and the standard library only): the tests grade each variant as a submission.
"""

import flax.linen as nn
import jax
from jax.random import PRNGKey


class _Block(nn.Module):
    """The reference block with each part that a mistake changes as an attribute (same module paths)."""

    rate: float = 0.25
    broadcast_dims: tuple[int, ...] = (-1,)  # (-1,): one draw per row, as the reference
    flag: str = "not train"  # how deterministic follows train: "not train", "train", "always", "never"
    on_sum: bool = False  # Dropout applied to x + branch instead of the branch
    residual: bool = True  # False: the block returns the branch alone
    rescale: bool = True  # False: kept branches are not divided by 1 - rate

    @nn.compact
    def __call__(self, x, train: bool):
        branch = nn.relu(nn.Dense(features=x.shape[-1], name="Dense_0")(x))
        deterministic = {"not train": not train, "train": train, "always": True, "never": False}[self.flag]
        drop = nn.Dropout(rate=self.rate, broadcast_dims=self.broadcast_dims, deterministic=deterministic)
        if self.on_sum:
            return drop(x + branch)
        branch = drop(branch)
        if not (self.rescale or deterministic):  # undo Dropout's division by 1 - rate
            branch = branch * (1.0 - self.rate)
        return x + branch if self.residual else branch


def _forward(seed, x, train, *, params_key=None, dropout_key=None, **block):
    seed = int(seed)
    train = bool(train >= 0.5)
    params_key = PRNGKey(seed) if params_key is None else params_key
    dropout_key = PRNGKey(seed + 1) if dropout_key is None else dropout_key
    model = _Block(**block)
    variables = model.init({"params": params_key, "dropout": dropout_key}, x, train=False)
    return model.apply(variables, x, train=train, rngs={"dropout": dropout_key})


def deterministic_inverted(seed, x, train):
    return _forward(seed, x, train, flag="train")


def dropout_never_active(seed, x, train):
    return _forward(seed, x, train, flag="always")


def dropout_active_at_eval(seed, x, train):
    return _forward(seed, x, train, flag="never")


def mask_per_element(seed, x, train):
    return _forward(seed, x, train, broadcast_dims=())


def mask_per_feature(seed, x, train):
    return _forward(seed, x, train, broadcast_dims=(0,))


def mask_whole_batch(seed, x, train):
    return _forward(seed, x, train, broadcast_dims=(0, 1))


def dropout_on_sum(seed, x, train):
    return _forward(seed, x, train, on_sum=True)


def residual_forgotten(seed, x, train):
    return _forward(seed, x, train, residual=False)


def rate_is_keep_probability(seed, x, train):
    return _forward(seed, x, train, rate=0.75)


def branch_not_rescaled(seed, x, train):
    return _forward(seed, x, train, rescale=False)


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
