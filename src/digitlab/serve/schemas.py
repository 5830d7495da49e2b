"""The JSON the API reads and writes, as Pydantic models: FastAPI validates requests and builds the OpenAPI
document from these, so what is documented is what is checked."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from digitlab.feedback import MAX_DIGITS_PER_SAMPLE
from digitlab.serve.limits import MAX_BATCH, MAX_JSON_PIXELS

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
    label: int | None = Field(ge=0, le=9, description="the most likely digit; null only when the image is refused "
                                                       "(see `reason`; never with accept_all=true)")
    confidence: float = Field(ge=0, le=1, description="the probability of the most likely digit")
    probabilities: list[float] = Field(min_length=10, max_length=10, description="P(digit) for 0..9")
    reason: str | None = Field(None, description="why the image is not labelled (\"blank\", \"not a digit\": a "
                                                 "letter, symbol, scribble or drawing); null for a digit")
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


Digit = Annotated[int, Field(ge=0, le=9)]
Box = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=4, max_length=4)]


class DigitCorrection(BaseModel):
    """One digit of a number, as /api/read answered it, with the label the user says is right."""

    model_config = ConfigDict(extra="forbid", strict=True)
    label: Digit = Field(description="the digit it really is")
    predicted: Digit | None = Field(None, description="what the model read there; null when it refused")
    box: Box = Field(description="[x0, y0, x1, y1]: the digit's box in the picture's pixels, end exclusive, "
                                 "as /api/read answers it")


class FeedbackLabels(BaseModel):
    """What the user says the picture shows: `label` for one digit (the whole picture), or `digits` for a
    number, digit by digit with boxes. Exactly one of the two."""

    model_config = ConfigDict(extra="forbid", strict=True)
    label: Digit | None = Field(None, description="one digit: the whole picture is this digit")
    predicted: Digit | None = Field(None, description="with `label`: what the model answered (null: refused)")
    digits: list[DigitCorrection] | None = Field(
        None, min_length=1, max_length=MAX_DIGITS_PER_SAMPLE,
        description=f"a number: 1..{MAX_DIGITS_PER_SAMPLE} digits, each with its box and label")

    @model_validator(mode="after")
    def one_kind(self) -> FeedbackLabels:
        if (self.label is None) == (self.digits is None):
            raise ValueError("give either `label` (one digit) or `digits` (a number, digit by digit)")
        if self.digits is not None and self.predicted is not None:
            raise ValueError("with `digits`, say what was predicted per digit, not in `predicted`")
        return self


class FeedbackRequest(FeedbackLabels):
    """A picture as JSON pixels, 0..255 white ink on black like /api/predict's, with what it shows."""

    pixels: list[Pixel] = Field(min_length=1, max_length=MAX_JSON_PIXELS,
                                description="width x height values 0..255, row-major, white ink on black")
    width: int = Field(28, ge=1, le=4096, description="the picture's width (default 28: an MNIST-style input)")
    height: int = Field(28, ge=1, le=4096, description="the picture's height")

    @model_validator(mode="after")
    def pixel_count(self) -> FeedbackRequest:
        if len(self.pixels) != self.width * self.height:
            raise ValueError(f"pixels: expected width x height = {self.width * self.height} values, "
                             f"got {len(self.pixels)}")
        return self


class FeedbackSaved(BaseModel):
    ids: list[str] = Field(description="the new samples' ids (file names are DIGIT/ID.png in the folder)")
    labels: list[int] = Field(description="the label filed for each new sample")
    counts: dict[str, int] = Field(description="samples saved per digit '0'..'9', and 'total', now")


class FeedbackStatus(BaseModel):
    enabled: bool = Field(description="whether this server saves corrections (`digitlab serve --no-feedback`)")
    folder: str | None = Field(description="where samples are saved: DIGIT/ID.png, originals/, feedback.jsonl")
    counts: dict[str, int] | None = Field(description="samples saved per digit '0'..'9', and 'total'")
    limit: int | None = Field(description="the most samples the folder may hold")
    command: str | None = Field(description="the command that fine-tunes the served model on the samples")
    output: str | None = Field(description="the folder that command writes: POST it to /api/model to use it")


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
    loaded_at: str = Field(description="when this model was loaded (UTC, ISO 8601): it changes on a switch or reload")
    sha256: str = Field(description="the weights file's SHA-256: which weights answer")


class ModelChoice(BaseModel):
    """The model to serve from now on."""

    model_config = ConfigDict(extra="forbid", strict=True)
    model: str = Field(min_length=1, max_length=4096,
                       description="a shipped model's name (strong, tutorial), or a run folder, .safetensors or "
                                   ".onnx file inside the server's folder or a --models-root")


class ReadRequest(BaseModel):
    """A picture of a number as JSON pixels: width x height values, row by row, 0..255, white ink on black
    like /api/predict's (dark ink on light is recognised too). Any canvas size, e.g. a 840x280 drawing."""

    model_config = ConfigDict(extra="forbid", strict=True)
    pixels: list[Pixel] = Field(min_length=1, max_length=MAX_JSON_PIXELS,
                                description="width x height values 0..255, row-major, white ink on black")
    width: int = Field(28, ge=1, le=4096, description="the picture's width (default 28: an MNIST-style input)")
    height: int = Field(28, ge=1, le=4096, description="the picture's height")

    @model_validator(mode="after")
    def pixel_count(self) -> ReadRequest:
        if len(self.pixels) != self.width * self.height:
            raise ValueError(f"pixels: expected width x height = {self.width * self.height} values, "
                             f"got {len(self.pixels)}")
        return self


class ReadDigit(BaseModel):
    box: Box = Field(description="[x0, y0, x1, y1]: the digit's box in the picture's pixels, end exclusive")
    label: Digit | None = Field(description="the digit read there; null when it is refused (see `reason`)")
    confidence: float = Field(ge=0, le=1, description="the probability of `label` (of the best digit if refused)")
    probabilities: list[float] = Field(min_length=10, max_length=10, description="P(digit) for 0..9")
    reason: str | None = Field(description="why this mark is not read as a digit; null when it is")
    preprocessed: list[int] = Field(
        min_length=784, max_length=784,
        description="the box's 28x28 input (0..255, row-major), as POST /api/feedback saves a correction of it")


class NumberMark(BaseModel):
    mark: Literal[".", ","] = Field(description="a decimal point or a comma")
    before: int = Field(ge=1, description="the mark is written before this digit of `digits` (0-based)")
    box: Box = Field(description="[x0, y0, x1, y1]: the mark's box in the picture's pixels, end exclusive")
    probability: float = Field(ge=0, le=1, description="how sure the check is that this is a mark (digitlab.point)")


class NumberReading(BaseModel):
    number: str = Field(description="the digits left to right, leading zeros kept, with a minus, a decimal point "
                                    "or a comma where written (\"-42\", \"3.14\"); \"\" when nothing is readable")
    confidence: float = Field(ge=0, le=1, description="how sure the whole number is (0 when nothing was read)")
    reason: str | None = Field(description="why nothing was read, e.g. \"blank\" or \"not a digit\"; else null")
    digits: list[ReadDigit] = Field(description="every piece read as a digit or refused as one, left to right")
    minus: Box | None = Field(default=None, description="[x0, y0, x1, y1]: the minus sign's box when the number "
                                                         "is written with one; else null")
    marks: list[NumberMark] = Field(default_factory=list, description="the decimal points and commas between "
                                                                      "the digits, left to right")
    model: str = Field(description="the model that read it, as /api/model's `source`")
