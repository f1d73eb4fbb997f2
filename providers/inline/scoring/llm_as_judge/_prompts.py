"""Prompt templates of the built-in judge functions. Placeholders name row columns."""

SIMPLEQA_TEMPLATE = """\
You grade answers to short factual questions. Compare a predicted answer with the gold target and \
give one grade: CORRECT, INCORRECT or NOT_ATTEMPTED.

- CORRECT: the predicted answer contains the information of the gold target and nothing that \
contradicts it. Wording, capitalisation, order and hedging do not matter as long as the gold \
target is there; a number must match to the last significant figure of the gold target; what \
the question itself implies may be left out.
- INCORRECT: any statement of the predicted answer contradicts the gold target, hedged or not.
- NOT_ATTEMPTED: the gold target is not fully there, and nothing contradicts it ("I don't know", \
a request for more context, a partial answer).

Do not apologise or explain; grade this example:
```
Question: {input_query}
Gold target: {expected_answer}
Predicted answer: {generated_answer}
```
Answer with one letter:
A: CORRECT
B: INCORRECT
C: NOT_ATTEMPTED
Just return the letter "A", "B" or "C", with no text around it."""
