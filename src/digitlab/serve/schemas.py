"""The JSON the API reads and writes, as Pydantic models: FastAPI validates requests and builds the OpenAPI
document from these, so what is documented is what is checked."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from digitlab.serve.limits import MAX_BATCH

Pixel = Annotated[float, Field(ge=0, le=255, allow_inf_nan=False)]
Image784 = Annotated[list[Pixel], Field(min_length=784, max_length=784)]


class PixelsRequest(BaseModel):
    """One 28x28 image as 784 numbers, row by row, 0 (black) to 255 (white ink) like MNIST."""

    # strict: true and "1" are not pixels; extra="forbid": a misspelt key is an error, not ignored.
    model_config = ConfigDict(extra="forbid", strict=True)
    pixels: Image784 = Field(description="784 values 0..255, row-major, white ink on black")


class BatchRequest(BaseModel):
    """Several 28x28 images, each as in PixelsRequest."""

    model_config = ConfigDict(extra="forbid", strict=True)
    images: list[Image784] = Field(min_length=1, max_length=MAX_BATCH,
                                   description=f"1..{MAX_BATCH} images of 784 values each")


class Prediction(BaseModel):
    label: int = Field(ge=0, le=9, description="the most likely digit")
    confidence: float = Field(ge=0, le=1, description="its probability")
    probabilities: list[float] = Field(min_length=10, max_length=10, description="P(digit) for 0..9")
    preprocessed: list[int] = Field(
        min_length=784, max_length=784, description="the 28x28 image the model saw (0..255, row-major)"
    )


class BatchPrediction(BaseModel):
    predictions: list[Prediction] = Field(description="one per image, in request order")


class ErrorBody(BaseModel):
    error: str = Field(description="what was wrong with the request")


class Health(BaseModel):
    status: Literal["ok"]
    model_loaded: bool = Field(description="the model answered a check input as it did when it was loaded")
    engine: str = Field(description="torch or onnx")
    version: str = Field(description="the digitlab version serving")
    arch: str = Field(description="the served model's architecture, as in /api/model")
    source: str = Field(description="the served model, as in /api/model")


class ModelInfo(BaseModel):
    arch: str = Field(description="architecture name (tutorial, fast, strong, vgg) or 'onnx' for an .onnx file")
    parameters: int | None
    accuracy: float | None = Field(description="MNIST test accuracy recorded at training time")
    engine: str
    source: str = Field(description="'shipped (file name)' for the packaged weights, else the --model given")
    version: str
    training: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    versions: dict[str, Any] | None = None
