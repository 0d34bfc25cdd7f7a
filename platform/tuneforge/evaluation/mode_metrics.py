"""Per-example metrics of the tuning modes (docs/modes.md): one score per example, so intervals work.

``(predictions, references)`` metrics compare a generation with its reference; *context* metrics also
get the conversation the model answered (``contexts[i]``), because some judgements need the input:
whether an editor kept what was already right, whether a question is answerable from the passage.
Everything here is offline (rouge-score, nltk's GLEU, no nltk data).

Metrics that must know a mode's prompts to read its output are factories here, and their mode
registers them with its own markers (``filter``: :func:`sentence_metrics`, ``chat+instruct``:
:func:`part_rouge`): nothing here imports ``tuneforge.modes``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tuneforge.data.text_parse import last_user, list_items, parse_numbered

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z0-9']+")
STOPWORDS = frozenset(
    "a an the of to in on at by for with from and or but is are was were be been what which who whom whose "
    "when where why how does do did this that these those it its as into than then there their they he she "
    "his her you your we our not no can could would should will".split()
)


def _rouge_l(pred: str, ref: str) -> float:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"]).score(ref, pred)["rougeL"].fmeasure


def gleu(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Sentence GLEU (nltk, whitespace tokens), the GEC-style n-gram match of an edited text, 0-1."""
    from nltk.translate.gleu_score import sentence_gleu

    return np.array(
        [sentence_gleu([r.split()], p.split()) for p, r in zip(predictions, references, strict=True)]
    )


def levenshtein(a: str, b: str) -> int:
    """Character edit distance (two-row dynamic programme)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def cer(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Character error rate: edit distance / reference length (lower is better; may exceed 1)."""
    return np.array(
        [
            levenshtein(p.strip(), r.strip()) / max(1, len(r.strip()))
            for p, r in zip(predictions, references, strict=True)
        ]
    )


def _matched(a: list[str], b: list[str]) -> set[int]:
    """Indices of ``a``'s tokens that the longest matching blocks pair with tokens of ``b``."""
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return {blk.a + k for blk in sm.get_matching_blocks() for k in range(blk.size)}


def kept_rate(predictions: Sequence[str], references: Sequence[str], contexts: Sequence[Any]) -> np.ndarray:
    """Of the input's words the correction kept (they were right), the share the prediction kept too.

    NaN when the reference rewrote everything (nothing was right to keep).
    """
    out = []
    for p, r, c in zip(predictions, references, contexts, strict=True):
        src = last_user(c).split()
        right = _matched(src, r.split())
        out.append(len(right & _matched(src, p.split())) / len(right) if right else math.nan)
    return np.array(out)


def structure_validity(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """1.0 when every non-blank line is a step numbered 1, 2, 3... in order (a parsable schedule)."""
    out = []
    for p in predictions:
        lines = [ln for ln in p.splitlines() if ln.strip()]
        steps = parse_numbered(p)
        out.append(
            float(
                bool(steps)
                and len(steps) == len(lines)
                and [n for n, _ in steps] == list(range(1, len(steps) + 1))
            )
        )
    return np.array(out)


def step_recall(predictions: Sequence[str], references: Sequence[str], threshold: float = 0.5) -> np.ndarray:
    """Share of reference steps matched (ROUGE-L >= ``threshold``) by some predicted step."""
    out = []
    for p, r in zip(predictions, references, strict=True):
        ref = [s for _, s in parse_numbered(r)] or [r]
        pred = [s for _, s in parse_numbered(p)] or [ln for ln in p.splitlines() if ln.strip()]
        out.append(sum(any(_rouge_l(x, s) >= threshold for x in pred) for s in ref) / len(ref))
    return np.array(out)


def sentence_set(text: str, none_marker: str = "") -> set[str]:
    """The sentences of ``text``, blanks normalised; empty for ``none_marker`` (the "keep nothing" answer)."""
    text = text.strip()
    if not text or text == none_marker:
        return set()
    return {" ".join(s.split()) for s in _SENTENCE.split(text) if s.strip()}


def sentence_prf(p: str, r: str, none_marker: str = "") -> tuple[float, float, float]:
    """(precision, recall, F1) of kept sentences; keeping nothing when nothing passes scores 1."""
    ps, rs = sentence_set(p, none_marker), sentence_set(r, none_marker)
    if not ps and not rs:
        return 1.0, 1.0, 1.0
    tp = len(ps & rs)
    prec = tp / len(ps) if ps else 0.0
    rec = tp / len(rs) if rs else 0.0
    return prec, rec, (2 * prec * rec / (prec + rec) if prec + rec else 0.0)


Scorer = Callable[..., np.ndarray]


def sentence_metrics(none_marker: str) -> dict[str, Scorer]:
    """``sentence_precision/recall/f1`` for a mode whose "nothing is kept" answer is ``none_marker``."""

    def part(k: int, doc: str) -> Scorer:
        def fn(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
            prf = [sentence_prf(p, r, none_marker) for p, r in zip(predictions, references, strict=True)]
            return np.array([x[k] for x in prf])

        fn.__doc__ = doc
        return fn

    return {
        "sentence_precision": part(0, "Share of the kept sentences that should have been kept."),
        "sentence_recall": part(1, "Share of the sentences that should be kept that were kept."),
        "sentence_f1": part(2, "F1 of kept sentences; keeping nothing when nothing passes scores 1."),
    }


#: One question per line, numbering and bullets stripped.
questions = list_items


def question_overlap(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Mean over reference questions of the best ROUGE-L F1 any predicted question reaches."""
    out = []
    for p, r in zip(predictions, references, strict=True):
        pred, ref = questions(p), questions(r) or [r]
        out.append(sum(max((_rouge_l(x, q) for x in pred), default=0.0) for q in ref) / len(ref))
    return np.array(out)


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 2}


def answerability(
    predictions: Sequence[str], references: Sequence[str], contexts: Sequence[Any]
) -> np.ndarray:
    """Share of predicted questions grounded in the passage: a lexical proxy for "answerable by the text".

    A question counts when it ends with '?' and at least half its content words occur in the passage.
    """
    out = []
    for p, c in zip(predictions, contexts, strict=True):
        passage, pred = _content_words(last_user(c)), questions(p)
        ok = [q.endswith("?") and (w := _content_words(q)) and len(w & passage) / len(w) >= 0.5 for q in pred]
        out.append(sum(map(bool, ok)) / len(ok) if ok else 0.0)
    return np.array(out)


def part_rouge(part: str, in_part: Callable[[Any], bool]) -> Scorer:
    """ROUGE-L on records for which ``in_part(conversation)`` holds (NaN elsewhere): a mode that
    switches between parts of one dialogue registers one of these per part."""

    def fn(predictions: Sequence[str], references: Sequence[str], contexts: Sequence[Any]) -> np.ndarray:
        return np.array(
            [
                _rouge_l(p, r) if in_part(c) else math.nan
                for p, r, c in zip(predictions, references, contexts, strict=True)
            ]
        )

    fn.__doc__ = f"ROUGE-L on records whose last answer is in {part} mode (NaN elsewhere)."
    return fn
