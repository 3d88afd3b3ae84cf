import jax

DEFAULT_RATE = dropout_rate  # defined nowhere


def model_train_eval_forward(seed, x, train):
    return x
