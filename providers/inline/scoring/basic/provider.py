"""The ``inline::basic`` scoring provider: answers compared without a model."""

from __future__ import annotations

from typing import Any

from stack.apis.scoring_functions import AggregationFunctionType, BasicScoringFnParams, RegexParserScoringFnParams

from providers.utils.scoring import BuiltinFunction, Rows, ScoringProvider, compile_regexes, first_group

#: phrases that introduce the chosen letter, in the languages of multilingual MMLU
ANSWER_PHRASES = [
    r"The best answer is", r"The correct answer is", r"Answer\s*:", r"Antwort\s*:", r"Réponse\s*:",
    r"Respuesta\s*:", r"Risposta\s*:", r"Resposta\s*:", r"Jawaban\s*:", r"Jibu\s*:", r"Idahun\s*:",
    r"答案\s*[:：]", r"答\s*[:：]", r"回答\s*[:：]", r"答え\s*[:：]", r"解答\s*[:：]", r"정답\s*:", r"답변\s*:",
    r"답\s*:", r"उत्तर\s*:", r"উত্তর\s*[:ঃ]", r"الإجابة\s*:", r"الجواب\s*:",
]
MULTIPLE_CHOICE_REGEXES = [rf"(?i){phrase}\s*([A-J]|[أ-د]|[Ａ-Ｊ])" for phrase in ANSWER_PHRASES]

ACCURACY = (AggregationFunctionType.accuracy,)

FUNCTIONS = (
    BuiltinFunction(
        "basic::equality", "Returns 1.0 if the generated answer equals the expected answer, 0.0 otherwise.",
        BasicScoringFnParams(aggregation_functions=[AggregationFunctionType.accuracy]), ACCURACY,
    ),
    BuiltinFunction(
        "basic::subset_of", "Returns 1.0 if the expected answer is contained in the generated answer, 0.0 otherwise.",
        BasicScoringFnParams(aggregation_functions=[AggregationFunctionType.accuracy]), ACCURACY,
    ),
    BuiltinFunction(
        "basic::regex_parser_multiple_choice_answer",
        "Extracts the answer letter from the generated answer ('Answer: B', 'The best answer is B', ...) "
        "and returns 1.0 if it equals the expected answer, 0.0 otherwise.",
        RegexParserScoringFnParams(parsing_regexes=MULTIPLE_CHOICE_REGEXES,
                                   aggregation_functions=[AggregationFunctionType.accuracy]),
        ACCURACY,
    ),
)


class BasicScoring(ScoringProvider):
    functions = FUNCTIONS

    async def score_rows(self, function: BuiltinFunction, params: Any, rows: Rows, field: str) -> list[dict[str, Any]]:
        if function.identifier == "basic::equality":
            return [_row(rows.value(i, "expected_answer") == rows.value(i, "generated_answer")) for i in range(len(rows.rows))]
        if function.identifier == "basic::subset_of":
            return [_row(rows.value(i, "expected_answer", text=True) in rows.value(i, "generated_answer", text=True))
                    for i in range(len(rows.rows))]
        patterns = compile_regexes(params.parsing_regexes, f"{field}.parsing_regexes")
        scored = []
        for i in range(len(rows.rows)):
            expected = rows.value(i, "expected_answer")
            parsed = first_group(patterns, rows.value(i, "generated_answer", text=True))
            scored.append(_row(parsed is not None and parsed == expected))
        return scored


def _row(correct: bool) -> dict[str, Any]:
    return {"score": 1.0 if correct else 0.0}
