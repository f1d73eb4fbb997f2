"""The ``inline::braintrust`` scoring provider: autoevals scorers, run in threads
(their calls are synchronous) against an OpenAI-compatible endpoint."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
from autoevals.llm import Factuality
from autoevals.ragas import (
    AnswerCorrectness,
    AnswerRelevancy,
    AnswerSimilarity,
    ContextEntityRecall,
    ContextPrecision,
    ContextRecall,
    ContextRelevancy,
    Faithfulness,
)
from autoevals.string import EmbeddingSimilarity

from stack.apis.scoring_functions import AggregationFunctionType, BasicScoringFnParams

from providers.utils.scoring import BuiltinFunction, Rows, ScoringProvider

from .config import BraintrustScoringConfig

AVERAGE = BasicScoringFnParams(aggregation_functions=[AggregationFunctionType.average])
SEE = " See github.com/braintrustdata/autoevals."

#: id -> (description, scorer class, needs a context column)
SCORERS: dict[str, tuple[str, type, bool]] = {
    "braintrust::factuality": ("Whether the generated answer is factual, compared with the expected answer.",
                               Factuality, False),
    "braintrust::answer-correctness": ("Factual and semantic agreement of the generated and expected answers.",
                                       AnswerCorrectness, False),
    "braintrust::answer-relevancy": ("How relevant the generated answer is to the question, given the context.",
                                     AnswerRelevancy, True),
    "braintrust::answer-similarity": ("Semantic similarity of the generated and expected answers (embeddings).",
                                      AnswerSimilarity, False),
    "braintrust::faithfulness": ("Whether the claims of the generated answer follow from the context.",
                                 Faithfulness, True),
    "braintrust::context-entity-recall": ("Share of the expected answer's entities found in the context.",
                                          ContextEntityRecall, True),
    "braintrust::context-precision": ("Whether the context holds what the expected answer needs, ranked first.",
                                      ContextPrecision, True),
    "braintrust::context-recall": ("Share of the expected answer's sentences the context supports.",
                                   ContextRecall, True),
    "braintrust::context-relevancy": ("How relevant the context is to the question.", ContextRelevancy, True),
}

FUNCTIONS = tuple(BuiltinFunction(fn_id, description + SEE, AVERAGE) for fn_id, (description, *_rest) in SCORERS.items())


class BraintrustScoring(ScoringProvider):
    functions = FUNCTIONS

    def __init__(self, config: BraintrustScoringConfig, base_url: str, **deps: Any) -> None:
        super().__init__(**deps)
        self.config = config
        self.base_url = base_url
        # a key is required by the client; this server ignores it when it has no API keys
        self.client = client = openai.OpenAI(base_url=base_url, api_key=config.openai_api_key or "polystack", timeout=config.timeout,
                               max_retries=0)
        self.scorers = {fn_id: _scorer(cls, config, client) for fn_id, (_d, cls, _c) in SCORERS.items()}
        self._slots = asyncio.Semaphore(config.max_concurrency)

    async def shutdown(self) -> None:
        self.client.close()

    async def score_rows(self, function: BuiltinFunction, params: Any, rows: Rows, field: str) -> list[dict[str, Any]]:
        needs_context = SCORERS[function.identifier][2]
        arguments = []
        for i in range(len(rows.rows)):
            kwargs = {"input": rows.value(i, "input_query", text=True)}
            if needs_context:
                kwargs["context"] = _context(rows, i)
            elif "context" in rows.rows[i]:
                kwargs["context"] = rows.rows[i]["context"]
            arguments.append((rows.value(i, "generated_answer", text=True), rows.value(i, "expected_answer", text=True),
                              kwargs))
        scorer = self.scorers[function.identifier]
        return list(await asyncio.gather(*(self._score(scorer, *args) for args in arguments)))

    async def _score(self, scorer: Any, output: str, expected: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        async with self._slots:
            try:
                result = await asyncio.to_thread(scorer, output, expected, **kwargs)
            except Exception as exc:  # the judge's reply did not parse, or its request failed: this row only
                return {"score": None, "metadata": {}, "error": f"{type(exc).__name__}: {exc}"}
        return {"score": result.score, "metadata": result.metadata}


def _scorer(cls: type, config: BraintrustScoringConfig, client: openai.OpenAI) -> Any:
    """An autoevals scorer on ``client``, every model it uses named (never OpenAI's defaults)."""
    judge, embedder = config.judge_model, config.embedding_model
    if cls is AnswerSimilarity:
        return cls(model=embedder, client=client)
    if cls is ContextEntityRecall:
        return cls(model=judge, client=client, pairwise_scorer=EmbeddingSimilarity(model=embedder, client=client))
    if cls in (AnswerCorrectness, AnswerRelevancy):
        return cls(model=judge, embedding_model=embedder, client=client)
    return cls(model=judge, client=client)


def _context(rows: Rows, index: int) -> str | list[str]:
    value = rows.value(index, "context")
    if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return value
    raise rows.error(index, "context", "must be a string or a list of strings")
