import jax
import flax.linen as nn

print("loading my model")


class TrainEvalModel(nn.Module):
    @nn.compact
    def __call__(self, x, train):
        return nn.Dropout(0.5, deterministic=not train)(nn.Dense(x.shape[-1])(x))


def model_train_eval_forward(seed, x, train):
    flag = train >= 0.5
    print(f"train={bool(flag)} len={x.shape[0]}")
    seed = int(seed)
    keys = {"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)}
    model = TrainEvalModel()
    params = model.init(keys, x, train=False)
    return model.apply(params, x, train=bool(flag), rngs={"dropout": keys["dropout"]})
