"""``inline::sample-and-filter``: for each dialog, sample candidate answers from a
model of the stack, rate each with a scoring function, keep those the request's
filtering function selects. Every request is a job of the stack (progress on
``GET /v1/jobs``); a small one is answered when done, a large one at once with
its job id.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from stack.apis._content import content_text
from stack.apis.models import ModelType
from stack.apis.scoring_functions import LLMAsJudgeScoringFnParams
from stack.apis.synthetic_data_generation import FilteringFunction, SyntheticDataGenerationResponse
from stack.errors import (BadRequestError, ClientError, ConflictError, NotFoundError, ServiceUnavailableError, StackError,
                          UnprocessableError)
from stack.jobs import JobCancelled, JobContext, JobStatus
from stack.registry import ProviderContext

from providers.utils.jobs import until_cancelled

from ._dialogs import Dialog, split_dialogs
from ._filters import FilterSettings, select
from ._scores import as_number, mean
from .config import SampleAndFilterConfig

JOB_KIND = "synthetic_data_generation"


@dataclass(frozen=True)
class _Request:
    """A request that passed every check, ready to run."""

    dialogs: list[Dialog]
    filtering_function: FilteringFunction
    model: str
    scoring_fn_id: str
    scoring_params: Any
    num_candidates: int

    @property
    def candidates(self) -> int:
        return len(self.dialogs) * self.num_candidates

    def summary(self) -> dict[str, Any]:
        return {"model": self.model, "filtering_function": self.filtering_function.value,
                "scoring_fn_id": self.scoring_fn_id, "dialogs": len(self.dialogs),
                "candidates_requested": self.candidates}


@dataclass
class _Candidate:
    index: int
    text: str
    score: float | None = None
    details: dict[str, Any] | None = None


class _Progress:
    """Counts generated and scored candidates into the job's progress (0..1)."""

    def __init__(self, ctx: JobContext | None, total: int) -> None:
        self.ctx, self.total = ctx, max(total, 1)
        self.generated = self.scored = 0

    def add(self, generated: int = 0, scored: int = 0) -> None:
        self.generated += generated
        self.scored += scored
        if self.ctx is None:
            return
        try:  # a cancel is acted on by until_cancelled, which stops every call in flight at once
            self.ctx.report((self.generated + self.scored) / (2 * self.total),
                            f"{self.generated} of {self.total} candidates generated, {self.scored} scored")
        except JobCancelled:
            pass


class SampleAndFilter:
    def __init__(self, config: SampleAndFilterConfig, context: ProviderContext) -> None:
        self.config = config
        self.inference = context.deps["inference"]
        self.models = context.deps["models"]
        self.scoring = context.deps["scoring"]
        self.scoring_functions = context.deps["scoring_functions"]
        self.jobs = context.jobs
        self.settings = FilterSettings(config.top_k, config.top_p, config.sigmoid_center, config.sigmoid_scale)
        self._slots = asyncio.Semaphore(config.max_concurrency)  # over all requests: the model is shared too

    # -- the route ---------------------------------------------------------------------------------

    async def synthetic_data_generate(self, dialogs: list[Any], filtering_function: FilteringFunction,
                                      model: str | None = None) -> SyntheticDataGenerationResponse:
        request = await self._checked(dialogs, FilteringFunction(filtering_function), model)
        if self.jobs is None:  # outside a running stack (no job store): the work itself, here
            return await self._run(request, None)
        failure: dict[str, StackError] = {}
        job_id = await self.jobs.submit(JOB_KIND, partial(self._job, request, failure), params=request.summary())
        if request.candidates > self.config.max_sync_candidates:
            return SyntheticDataGenerationResponse(synthetic_data=[], statistics={
                **request.summary(), "job_id": job_id, "status": JobStatus.scheduled.value,
                "result": f"/v1/jobs/{job_id}"})
        try:
            job = await self.jobs.wait(job_id)
        except asyncio.CancelledError:  # the client went away: so does its work
            await self.jobs.cancel(job_id)
            raise
        if job.status == JobStatus.completed:
            return SyntheticDataGenerationResponse.model_validate(job.result)
        if "error" in failure:
            raise failure["error"]
        if job.status == JobStatus.cancelled:
            raise ConflictError(f"job {job_id!r} generating this data was cancelled")
        if job.status == JobStatus.interrupted:
            raise ServiceUnavailableError(f"job {job_id!r} generating this data was interrupted: the server is stopping")
        raise RuntimeError(f"synthetic data job {job_id} failed: {job.error}")

    # -- checks before any work ----------------------------------------------------------------------

    async def _checked(self, messages: list[Any], function: FilteringFunction, model: str | None) -> _Request:
        dialogs = split_dialogs(messages)
        if len(dialogs) > self.config.max_dialogs:
            raise BadRequestError(f"holds {len(dialogs)} dialogs; this server takes at most {self.config.max_dialogs} "
                                  "in one request (max_dialogs)", field="dialogs")
        model_id = model or self.config.default_model
        if not model_id:
            raise BadRequestError("name the model that generates the candidates (this provider has no default_model)",
                                  field="model")
        await self._llm(model_id, field="model")
        fn_id = self.config.scoring_fn_id
        try:
            fn = await self.scoring_functions.get(fn_id)
        except NotFoundError as exc:
            raise UnprocessableError(f"the synthetic data provider's scoring_fn_id names no scoring function of "
                                     f"this stack: {exc.message}") from None
        params = await self._scoring_params(self.config.scoring_params or fn.params, model_id)
        return _Request(dialogs, function, model_id, fn_id, params, self.config.num_candidates)

    async def _llm(self, model_id: str, field: str) -> None:
        try:
            found = await self.models.get(model_id)
        except NotFoundError as exc:
            raise NotFoundError(exc.kind, exc.identifier, message=f"{field}: {exc.message}") from None
        if found.model_type != ModelType.llm:
            raise BadRequestError(f"model {model_id!r} is an {found.model_type.value} model, not an llm", field=field)

    async def _scoring_params(self, params: Any, model_id: str) -> Any:
        """An LLM judge without a prompt of its own (llm-as-judge::base) gets the config's ``judge``."""
        if not isinstance(params, LLMAsJudgeScoringFnParams) or params.prompt_template:
            return params
        judge = self.config.judge
        if judge.model:
            try:
                await self._llm(judge.model, field="judge.model")
            except StackError as exc:
                raise UnprocessableError(f"the synthetic data provider's {exc.message}") from None
        return LLMAsJudgeScoringFnParams(judge_model=judge.model or model_id, prompt_template=judge.prompt_template,
                                         judge_score_regexes=judge.score_regexes,
                                         aggregation_functions=params.aggregation_functions)

    # -- the work ------------------------------------------------------------------------------------

    async def _job(self, request: _Request, failure: dict[str, StackError], ctx: JobContext) -> dict[str, Any]:
        try:
            response = await until_cancelled(ctx, self._run(request, ctx))
        except StackError as exc:  # the waiting request answers with it as it is (status and all)
            failure["error"] = exc
            raise
        response.statistics["job_id"] = ctx.job_id
        return response.model_dump(mode="json")

    async def _run(self, request: _Request, ctx: JobContext | None) -> SyntheticDataGenerationResponse:
        started = time.monotonic()
        progress = _Progress(ctx, request.candidates)
        errors: list[StackError] = []
        groups = await asyncio.gather(*(self._dialog(request, d, progress, errors) for d in request.dialogs))
        if errors and not any(groups):  # nothing at all came back: the model's error is the answer
            raise errors[0]
        rng = random.Random(self.config.seed)  # drawn dialog by dialog, in order: a seed repeats the selection
        rows, kept_scores = [], []
        for i, (dialog, candidates) in enumerate(zip(request.dialogs, groups)):
            for j in select(request.filtering_function, [c.score for c in candidates], self.settings, rng):
                c = candidates[j]
                rows.append({"dialog_index": i, "candidate_index": c.index,
                             "messages": [m.model_dump(mode="json") for m in dialog.messages],
                             "prompt": dialog.prompt, "response": c.text, "score": c.score, "score_details": c.details})
                if c.score is not None:
                    kept_scores.append(c.score)
        scores = [c.score for group in groups for c in group if c.score is not None]
        statistics = {
            **request.summary(), "candidates": sum(map(len, groups)), "failed_candidates": len(errors),
            "scored": len(scores), "kept": len(rows), "mean_score": mean(scores), "mean_kept_score": mean(kept_scores),
            "seconds": round(time.monotonic() - started, 3),
        }
        if errors:
            statistics["first_error"] = errors[0].message
        why_unscored = next((c.details.get("error") for group in groups for c in group
                             if c.score is None and c.details and c.details.get("error")), None)
        if why_unscored:  # a judge that gives no numbers is the usual reason a filter kept nothing
            statistics["first_scoring_error"] = why_unscored
        return SyntheticDataGenerationResponse(synthetic_data=rows, statistics=statistics)

    async def _dialog(self, request: _Request, dialog: Dialog, progress: _Progress,
                      errors: list[StackError]) -> list[_Candidate]:
        answers = await asyncio.gather(*(self._sample(request.model, dialog) for _ in range(request.num_candidates)),
                                       return_exceptions=True)
        candidates = []
        for i, answer in enumerate(answers):
            if isinstance(answer, BadRequestError):  # the request's dialog, not the model, is at fault
                raise BadRequestError(f"the model refused the dialog ending at dialogs[{dialog.last}]: "
                                      f"{answer.message}", field="dialogs") from None
            if isinstance(answer, ClientError):
                raise answer
            if isinstance(answer, StackError):  # one failed call (an upstream's) does not lose the others
                errors.append(answer)
            elif isinstance(answer, BaseException):
                raise answer
            else:
                candidates.append(_Candidate(i, answer))
        progress.add(generated=request.num_candidates)
        if candidates:
            await self._score(request, dialog, candidates)
        progress.add(scored=request.num_candidates)
        return candidates

    async def _sample(self, model_id: str, dialog: Dialog) -> str:
        async with self._slots:
            response = await self.inference.chat_completion(
                model_id=model_id, messages=dialog.messages,
                sampling_params=self.config.sampling_params.model_copy(deep=True), stream=False)
        return content_text(response.completion_message.content)

    async def _score(self, request: _Request, dialog: Dialog, candidates: list[_Candidate]) -> None:
        context = {"input_query": dialog.prompt, "dialog": dialog.transcript(),
                   "chat_completion_input": json.dumps([m.model_dump(mode="json") for m in dialog.messages])}
        rows = [{**context, "generated_answer": c.text} for c in candidates]
        try:
            response = await self.scoring.score(input_rows=rows,
                                                scoring_functions={request.scoring_fn_id: request.scoring_params})
        except BadRequestError as exc:  # the rows are ours: what it refuses is the provider's config
            raise UnprocessableError(f"scoring_fn_id {request.scoring_fn_id!r} cannot rate candidates "
                                     f"(see the synthetic data provider's config): {exc.message}") from None
        for candidate, row in zip(candidates, response.results[request.scoring_fn_id].score_rows):
            candidate.score, candidate.details = as_number(row)
