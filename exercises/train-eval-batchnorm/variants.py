"""Variants of the reference, each making one known mistake (see mistakes.toml).

The grader runs these in a trusted child, on the same cases as the reference, and reports the mistake
whose outputs a submission's outputs equal. Each function has the entry point's signature. None may raise:
where the mistake makes Flax raise in a learner's code (BatchNorm updating its statistics in an apply that
does not make them mutable), the variant takes the way round a learner would take to get an output, and the
submission that raised is judged on its other cases.
"""

import flax.linen as nn
import jax


class _Model(nn.Module):
    """The reference model, with BatchNorm's switch and feature axis as attributes (same module paths, so the
    same parameters)."""

    flag: str = "not train"  # how use_running_average follows train: "not train", "train", "never"
    axis: int = -1

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(features=x.shape[-1], name="Dense_0")(x)
        use_running_average = {"not train": not train, "train": train, "never": False}[self.flag]
        norm = nn.BatchNorm(
            use_running_average=use_running_average,
            momentum=0.9,
            epsilon=1e-5,
            axis=self.axis,
            name="BatchNorm_0",
        )
        return norm(x)


def _stats(collection):
    stats = collection["BatchNorm_0"]
    return {"mean": stats["mean"], "var": stats["var"]}


def _forward(seed, x, train, *, model=None, carry=True, return_before=False, eval_mutable=False):
    """The reference's steps, with one of them done wrong."""
    train = bool(train >= 0.5)
    model = model or _Model()
    variables = model.init(jax.random.PRNGKey(int(seed)), x, train=False)
    _, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
    if carry:
        variables = {"params": variables["params"], "batch_stats": updates["batch_stats"]}
    if train:
        y, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
        collection = variables["batch_stats"] if return_before else updates["batch_stats"]
    elif eval_mutable:  # an apply that lets BatchNorm write, where the mistake has it use the batch's statistics
        y, _ = model.apply(variables, x, train=False, mutable=["batch_stats"])
        collection = variables["batch_stats"]
    else:
        y = model.apply(variables, x, train=False)
        collection = variables["batch_stats"]
    return y, _stats(collection)


def running_average_inverted(seed, x, train):
    """use_running_average=train: running averages in training (never moved), batch statistics at evaluation
    (where a learner's plain apply raises; this one lets BatchNorm write, and returns the carried ones)."""
    return _forward(seed, x, train, model=_Model(flag="train"), eval_mutable=True)


def stats_not_carried(seed, x, train):
    """The training step's updates are dropped: every later call starts from the initial averages."""
    return _forward(seed, x, train, carry=False)


def stats_before_update(seed, x, train):
    """In training, the statistics the call started from are returned, not the ones it wrote."""
    return _forward(seed, x, train, return_before=True)


def wrong_axis(seed, x, train):
    """nn.BatchNorm(axis=0): the batch axis taken for the feature axis, so each row is normalised over the
    features, and the statistics have one entry per row."""
    return _forward(seed, x, train, model=_Model(axis=0))


def batch_stats_at_eval(seed, x, train):
    """use_running_average=False in both modes: evaluation normalises with the batch's own statistics."""
    return _forward(seed, x, train, model=_Model(flag="never"), eval_mutable=True)
