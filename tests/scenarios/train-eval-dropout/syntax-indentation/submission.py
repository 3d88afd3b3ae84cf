import jax


def model_train_eval_forward(seed, x, train):
    seed = int(seed)
      return x
