"""Config of ``inline::sample-and-filter`` (pydantic only: cheap to import)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from stack.apis.inference import SamplingParams, TopPSamplingStrategy
from stack.apis.scoring_functions import ScoringFnParams

RATING_TEMPLATE = """\
Rate how well the response answers the last user message of the conversation, from 0 (wrong, \
unhelpful or off topic) to 10 (correct, helpful and clear).

Conversation:
{dialog}

Response:
{generated_answer}

Reply with the rating only, as "Rating: N"."""

#: "Rating: 7", else "7/10" or "7 out of 10", else a reply that is only a number (not any digit: "No.1" is no rating)
RATING_REGEXES = [r"Rating:\s*(\d+(?:\.\d+)?)", r"\b(\d+(?:\.\d+)?)\s*(?:/|out of)\s*10\b", r"^\s*(\d+(?:\.\d+)?)\s*\.?\s*$"]


class JudgeConfig(BaseModel):
    """The LLM judge used when the scoring function is an LLM judge without a prompt of its own (``llm-as-judge::base``)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="The judge model; None: the model that generated the candidates")
    prompt_template: str = Field(
        RATING_TEMPLATE,
        description="Placeholders: {dialog} (the dialog as 'role: text' lines), {input_query} (its last user "
                    "message), {generated_answer} (the candidate)",
    )
    score_regexes: list[str] = Field(
        default_factory=lambda: list(RATING_REGEXES),
        description="Read the score out of the judge's reply: the first group of the first regex that matches",
    )


def _default_sampling() -> SamplingParams:
    return SamplingParams(strategy=TopPSamplingStrategy(temperature=0.8, top_p=0.95), max_tokens=256)


class SampleAndFilterConfig(BaseModel):
    """``config: {}`` works: 4 candidates a dialog, rated 0-10 by the generating model itself."""

    model_config = ConfigDict(extra="forbid")

    default_model: str | None = Field(None, description="The model of a request that names none")
    num_candidates: int = Field(4, ge=1, le=64, description="Candidate answers sampled per dialog")
    sampling_params: SamplingParams = Field(
        default_factory=_default_sampling,
        description="How candidates are sampled; a greedy strategy gives every candidate the same answer",
    )
    scoring_fn_id: str = Field("llm-as-judge::base", description="The registered scoring function that rates each candidate")
    scoring_params: ScoringFnParams | None = Field(
        None, description="Params sent with each scoring call; None: the function's registered params "
                          "(for an LLM judge without a prompt template: those of `judge`)",
    )
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    top_k: int = Field(1, ge=1, description="Candidates top_k (and top_k_top_p) keep per dialog")
    top_p: float = Field(0.9, gt=0, le=1, description="Share of a dialog's summed score that top_p keeps")
    sigmoid_center: float = Field(5.0, description="sigmoid keeps a candidate with probability "
                                                   "sigmoid((score - sigmoid_center) / sigmoid_scale)")
    sigmoid_scale: float = Field(1.0, gt=0, description="See sigmoid_center")
    seed: int | None = Field(None, description="Seed of the random and sigmoid draws; None: new draws each request")
    max_concurrency: int = Field(4, ge=1, le=256, description="Candidates generated at once")
    max_dialogs: int = Field(1000, ge=1, description="Most dialogs in one request")
    max_sync_candidates: int = Field(
        8, ge=0, description="A request of more candidates (dialogs x num_candidates) answers at once with a "
                              "job id in statistics; smaller ones answer with the data",
    )
