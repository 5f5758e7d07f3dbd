"""sealserve.json: what a bundle is, what it takes and what it returns. Signed like every other file."""

from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from typing import Any, Literal

from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sealserve.bundle.format_version import FORMAT_MAJOR

METADATA_FILE = "sealserve.json"
COMPILED_FILE = "model.onnx"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
CategoryCode = bool | int | float | str  # bool first: a boolean class stays a boolean


class ModelFormat(str, Enum):
    SKOPS = "skops"
    ONNX = "onnx"
    JOBLIB = "joblib"
    XGBOOST = "xgboost"
    LIGHTGBM = "lightgbm"

    @property
    def filename(self) -> str:
        return MODEL_FILES[self]


MODEL_FILES = {
    ModelFormat.SKOPS: "model.skops",
    ModelFormat.ONNX: "model.onnx",
    ModelFormat.JOBLIB: "model.joblib",
    ModelFormat.XGBOOST: "model.xgboost.json",
    ModelFormat.LIGHTGBM: "model.lightgbm.txt",
}


class InputShape(str, Enum):
    """What the model was fitted on, so every protocol hands it the same shape."""

    ROWS = "rows"
    FRAME = "frame"
    RECORDS = "records"
    TEXT = "text"


class FeatureKind(str, Enum):
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    CATEGORY = "category"
    TEXT = "text"


class Feature(BaseModel):
    """One input column, in model order. Categories map the label a client sends to the code the model saw.

    `minimum`/`maximum` are bounds the author declared (enforced); observed ranges live in the statistics.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: FeatureKind
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    categories: dict[str, CategoryCode] | None = None
    allow_unknown: bool = False
    nullable: bool = False
    dtype: str | None = None


class FeatureStatistics(BaseModel):
    """Training distribution of one feature: the reference for drift."""

    model_config = ConfigDict(extra="forbid")

    count: int
    mean: float | None = None
    std: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    bin_edges: list[float] | None = None
    bin_counts: list[int] | None = None
    frequencies: dict[str, int] | None = None


class ModelClass(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: CategoryCode
    label: str


Task = Literal["classification", "regression", "multi_output", "clustering", "outlier_detection"]
MAJOR_2_TASKS = frozenset({"multi_output", "clustering", "outlier_detection"})
"""Tasks a format-1 reader would misread (it knows only classification and regression): they need format 2."""


class Target(BaseModel):
    """One column of a multi-output prediction: its name and what it predicts (a number, or a class value)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    task: Literal["classification", "regression"]
    classes: list[CategoryCode] = Field(default_factory=list)


class OutputSpec(BaseModel):
    """What the model answers. `targets` for multi_output; `score` names the method an outlier detector scores with.

    Both are left out of the file when unused, so a classification or regression bundle reads as it did in format 1.
    """

    model_config = ConfigDict(extra="forbid")

    task: Task
    classes: list[ModelClass] = Field(default_factory=list)
    probabilities: bool = False
    targets: list[Target] = Field(default_factory=list, exclude_if=lambda targets: not targets)
    score: Literal["score_samples", "decision_function"] | None = Field(default=None, exclude_if=lambda score: score is None)

    @model_validator(mode="after")
    def _fields_fit_the_task(self) -> OutputSpec:
        if (self.task == "multi_output") != bool(self.targets):
            raise ValueError("targets are given for a multi_output task, and only for it")
        if len({target.name for target in self.targets}) != len(self.targets):
            raise ValueError("target names must be unique")
        if (self.task == "outlier_detection") != (self.score is not None):
            raise ValueError("score is given for an outlier_detection task, and only for it")
        return self

    @property
    def format_major(self) -> int:
        """The lowest bundle format major that expresses this output."""
        return 2 if self.task in MAJOR_2_TASKS else 1

    @property
    def decoded(self) -> bool:
        """Whether the bundle declares readable labels (0 → "<=50K"): then every protocol answers the label."""
        return any(item.label != str(item.value) for item in self.classes)

    def answers(self) -> dict[CategoryCode, CategoryCode]:
        """What each class value answers as on every protocol: its label when decoded, else itself with its JSON type."""
        decoded = self.decoded
        return {item.value: item.label if decoded else item.value for item in self.classes}


class BoosterStep(BaseModel):
    """The XGBoost or LightGBM estimator ending a scikit-learn pipeline, kept in its own data-only file (format 3): the
    skops file holds the pipeline with "passthrough" in that step, and the loader puts the booster back."""

    model_config = ConfigDict(extra="forbid")

    step: str = Field(min_length=1, description="The pipeline step the booster fills.")
    format: Literal[ModelFormat.XGBOOST, ModelFormat.LIGHTGBM]
    file: str
    estimator: str = Field(description="Qualified class name of the booster estimator.")
    n_features: int = Field(ge=1, description="How many features the booster receives from the steps before it.")

    @model_validator(mode="after")
    def _file_is_the_formats(self) -> BoosterStep:
        if self.file != self.format.filename:
            raise ValueError(f"a {self.format.value} step is stored as {self.format.filename}, not {self.file}")
        return self


BOOSTER_STEP_MAJOR = 3
"""A bundle with a booster step needs format 3: a format-2 reader would ignore the field and serve the pipeline without
its last step."""


class ParityRecord(BaseModel):
    """How the compiled model answered the pack sample next to the reference estimator, both fed as the server feeds them.

    Classifiers record label agreement (and the largest probability difference when they have probabilities);
    regressors record the largest value difference relative to the sample's largest absolute prediction.
    """

    model_config = ConfigDict(extra="forbid")

    rows: int = Field(gt=0)
    label_agreement: float | None = Field(default=None, ge=0, le=1)
    max_abs_probability_diff: float | None = Field(default=None, ge=0)
    max_abs_value_diff: float | None = Field(default=None, ge=0, description="Relative to the largest absolute value predicted.")
    tolerance: float = Field(gt=0)


class CompiledModel(BaseModel):
    """A second, compiled form of the same model (ONNX), signed like every file, with the parity it showed at pack time."""

    model_config = ConfigDict(extra="forbid")

    file: str = COMPILED_FILE
    runtime: Literal["onnxruntime"] = "onnxruntime"
    parity: ParityRecord


class ExplanationRecord(BaseModel):
    """What explanations need beyond the model (docs/explanations.md): the means of the columns a linear last step
    takes (after one-hot and scaling), and the optional background sample's file. Additive: a reader without it ignores it."""

    model_config = ConfigDict(extra="forbid")

    column_means: list[float] | None = Field(default=None, description="Means over the pack sample of the last step's input columns.")
    background: str | None = Field(default=None, description="Signed file of client-shaped records (`pack --background N`).")
    background_rows: int = Field(default=0, ge=0)


BACKGROUND_FILE = "explain/background.json"


class BundleMetadata(BaseModel):
    """The content of sealserve.json."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(
        default=1,
        ge=1,
        le=FORMAT_MAJOR,
        description="The format's major version (pack writes the lowest that expresses the bundle); see docs/bundle-format.md.",
    )
    name: str
    version: str
    format: ModelFormat
    model_file: str
    created: datetime
    description: str = ""
    library_versions: dict[str, str]
    features: list[Feature]
    output: OutputSpec
    input_shape: InputShape = InputShape.ROWS
    estimator: str = Field(default="", description="Qualified class name of the packed model.")
    required_types: list[str] | None = Field(
        default=None, description="Types the model file needs beyond its format's own; None in bundles from before they were declared."
    )
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    statistics: dict[str, FeatureStatistics] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    reports: list[str] = Field(default_factory=list)
    compiled: CompiledModel | None = Field(default=None, description="The compiled form served by default; None when there is none.")
    compiled_skipped: str | None = Field(default=None, description="Why the bundle has no compiled form (None when it has one).")
    booster_step: BoosterStep | None = Field(default=None, exclude_if=lambda step: step is None)
    explanation: ExplanationRecord | None = Field(default=None, exclude_if=lambda record: record is None)

    @model_validator(mode="after")
    def _major_expresses_the_output(self) -> BundleMetadata:
        if self.schema_version < self.output.format_major:
            raise ValueError(f"task {self.output.task} needs bundle format {self.output.format_major}, not {self.schema_version}")
        if self.booster_step is not None:
            if self.schema_version < BOOSTER_STEP_MAJOR:
                raise ValueError(f"a pipeline with a booster step needs bundle format {BOOSTER_STEP_MAJOR}, not {self.schema_version}")
            if self.format is not ModelFormat.SKOPS:
                raise ValueError(f"a booster step completes a skops pipeline, not a {self.format.value} model")
        return self

    @field_validator("name")
    @classmethod
    def _name_is_safe(cls, value: str) -> str:
        return check_name(value)

    @field_validator("version")
    @classmethod
    def _version_is_pep440(cls, value: str) -> str:
        return check_version(value)

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]


def check_name(value: str) -> str:
    if not NAME_PATTERN.match(value):
        raise ValueError(f"model name {value!r} must match {NAME_PATTERN.pattern}")
    return value


def check_version(value: str) -> str:
    """Versions are PEP 440 so that 'older' has one meaning (rollback protection relies on it)."""
    try:
        Version(value)
    except InvalidVersion:
        raise ValueError(f"version {value!r} is not a PEP 440 version such as 1.2.0") from None
    if not NAME_PATTERN.match(value):
        raise ValueError(f"version {value!r} contains characters not allowed in a store path")
    return value


def version_key(value: str) -> Version:
    return Version(value)
