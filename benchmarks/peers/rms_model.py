"""rest_model_service model for the comparison: the joblib pipeline behind an ml_base MLModel.

Copied into the rest_model_service env folder and named in its YAML config as `rms_model.JoblibClassifier`;
it runs in that env (ml_base, pydantic, scikit-learn), not in sealserve's. Like sealserve's native API, it
answers the predicted class and the class probabilities for one record.
"""

from typing import Any

import joblib
import numpy as np
from ml_base import MLModel
from pydantic import BaseModel, create_model


class Prediction(BaseModel):
    prediction: int
    probabilities: list[float]


class JoblibClassifier(MLModel):
    def __init__(self, name: str, model_path: str, features: list[str], integers: list[str]) -> None:
        self._name = name
        self._features = features
        self._model = joblib.load(model_path)
        fields: dict[str, Any] = {feature: (int if feature in integers else float, ...) for feature in features}
        self._input = create_model(f"{name}_input", **fields)

    @property
    def display_name(self) -> str:
        return self._name

    @property
    def qualified_name(self) -> str:
        return self._name

    @property
    def description(self) -> str:
        return f"{self._name} (joblib)"

    @property
    def version(self) -> str:
        return "1.0.0"

    @property
    def input_schema(self) -> type[BaseModel]:
        return self._input

    @property
    def output_schema(self) -> type[BaseModel]:
        return Prediction

    def predict(self, data: BaseModel) -> Prediction:
        row = np.array([[float(getattr(data, feature)) for feature in self._features]])
        probabilities = self._model.predict_proba(row)[0]
        return Prediction(prediction=int(self._model.classes_[probabilities.argmax()]), probabilities=probabilities.tolist())
