"""The ``inline::llm-as-judge`` scoring provider: a model the stack serves grades
each row; ``judge_score_regexes`` read the grade out of its reply."""

from __future__ import annotations

import asyncio
import string
from typing import Any

from stack.apis._content import content_text
from stack.apis.inference import SamplingParams, UserMessage
from stack.apis.scoring_functions import LLMAsJudgeScoringFnParams
from stack.errors import BadRequestError, NotFoundError, StackError

from providers.utils.scoring import BuiltinFunction, Rows, ScoringProvider, compile_regexes, first_group

from ._prompts import SIMPLEQA_TEMPLATE
from .config import LlmAsJudgeScoringConfig

FUNCTIONS = (
    BuiltinFunction(
        "llm-as-judge::base",
        "An LLM grades each row: give judge_model, prompt_template (placeholders name row columns, "
        "e.g. {input_query}, {expected_answer}, {generated_answer}) and judge_score_regexes in params.",
        LLMAsJudgeScoringFnParams(judge_model="meta-llama/Llama-3.1-405B-Instruct"),
    ),
    BuiltinFunction(
        "llm-as-judge::405b-simpleqa",
        "An LLM grades a SimpleQA answer against the gold target: A (correct), B (incorrect), C (not attempted).",
        LLMAsJudgeScoringFnParams(judge_model="Llama3.1-405B-Instruct", prompt_template=SIMPLEQA_TEMPLATE,
                                  judge_score_regexes=[r"(A|B|C)"]),
    ),
)


class LlmAsJudgeScoring(ScoringProvider):
    functions = FUNCTIONS
    fallback = "llm-as-judge::base"  # a registered judge function brings its own params

    def __init__(self, config: LlmAsJudgeScoringConfig, *, inference: Any, models: Any = None, **deps: Any) -> None:
        super().__init__(**deps)
        self.config = config
        self.inference = inference
        self.models = models
        self._slots = asyncio.Semaphore(config.max_concurrency)

    async def check_call(self, function: BuiltinFunction, params: LLMAsJudgeScoringFnParams, field: str) -> None:
        if not params.prompt_template:
            raise BadRequestError("the judge needs a prompt template", field=f"{field}.prompt_template")
        _placeholders(params.prompt_template, f"{field}.prompt_template")
        compile_regexes(params.judge_score_regexes, f"{field}.judge_score_regexes")
        if self.models is not None:
            try:
                await self.models.get(params.judge_model)
            except NotFoundError as exc:
                raise BadRequestError(exc.message, field=f"{field}.judge_model") from None

    async def score_rows(self, function: BuiltinFunction, params: LLMAsJudgeScoringFnParams, rows: Rows,
                         field: str) -> list[dict[str, Any]]:
        columns = _placeholders(params.prompt_template, f"{field}.prompt_template")
        prompts = [params.prompt_template.format(**{c: rows.value(i, c) for c in columns}) for i in range(len(rows.rows))]
        patterns = compile_regexes(params.judge_score_regexes, f"{field}.judge_score_regexes")
        return list(await asyncio.gather(*(self._judge(params.judge_model, prompt, patterns) for prompt in prompts)))

    async def _judge(self, model_id: str, prompt: str, patterns) -> dict[str, Any]:
        async with self._slots:
            try:
                response = await self.inference.chat_completion(
                    model_id=model_id, messages=[UserMessage(content=prompt)],
                    sampling_params=SamplingParams(max_tokens=self.config.max_tokens), stream=False,
                )
            except StackError as exc:  # one row's failure (an upstream error) does not lose the others
                return {"score": None, "judge_feedback": None, "error": f"the judge failed: {exc.message}"}
        feedback = content_text(response.completion_message.content, "\n")
        rating = first_group(patterns, feedback)
        if rating is None:
            return {"score": None, "judge_feedback": feedback,
                    "error": "no judge_score_regexes matched the judgement"}
        return {"score": rating, "judge_feedback": feedback}


def _placeholders(template: str, field: str) -> list[str]:
    """The row columns ``template`` names; a 400 for a template str.format cannot fill."""
    try:
        names = [name for _text, name, _spec, _conv in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise BadRequestError(f"not a template: {exc} (write a literal brace as {{{{ or }}}})", field=field) from None
    if any(not name.isidentifier() for name in names):
        raise BadRequestError("placeholders must name row columns, like {generated_answer}", field=field)
    return list(dict.fromkeys(names))
