"""The pydantic base every spec model uses: unknown keys are errors, values are immutable."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A spec section: extra keys forbidden (typos surface as errors), frozen after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)
