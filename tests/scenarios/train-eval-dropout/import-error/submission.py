import jax
import flax_helpers_that_do_not_exist


def model_train_eval_forward(seed, x, train):
    return x
