# A handler that defines only model_fn (the image has no default model_fn for
# scikit-learn): the sklearn image then serves with its own default input_fn, predict_fn
# and output_fn. bench/image_serving.py times it as "the image's default handler".
import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
