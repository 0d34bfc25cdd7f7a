"""question: given a text, return insightful, relevant questions about it (one per line)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tuneforge.data import Conversation
from tuneforge.modes.base import BuildOptions, Mode, conversation
from tuneforge.modes.sources import first_key, load_json, records, suffix

PROMPTS = {"system": "Read the text and ask insightful, relevant questions about it, one per line."}


@dataclass(frozen=True)
class QuestionExample:
    """A passage and reference questions about it."""

    passage: str
    questions: tuple[str, ...]


def compile_question(ex: QuestionExample) -> Conversation:
    body = "\n".join(f"{i}. {q}" for i, q in enumerate(ex.questions, 1))
    return conversation(PROMPTS["system"], ("user", ex.passage), ("assistant", body))


def squad_examples(path: str, opts: BuildOptions) -> Iterator[QuestionExample]:
    """SQuAD v1/v2 nested JSON, or the flattened HF layout (``data: [{context, question}]``)."""
    data = load_json(path)
    articles = data.get("data", []) if isinstance(data, dict) else data
    by_context: dict[str, list[str]] = {}
    for art in articles:
        if "paragraphs" in art:
            for para in art["paragraphs"]:
                qs = [qa["question"].strip() for qa in para.get("qas", [])]
                by_context.setdefault(para["context"].strip(), []).extend(qs)
        elif "context" in art and "question" in art:
            by_context.setdefault(art["context"].strip(), []).append(art["question"].strip())
    max_q = int(opts.opt("max_questions", 5))
    for passage, qs in by_context.items():
        opts.counts["passages"] += 1
        yield QuestionExample(passage, tuple(dict.fromkeys(qs))[:max_q])


def qa_pair_examples(path: str, opts: BuildOptions) -> Iterator[QuestionExample]:
    """Records with a passage and question(s): ``{context|passage|text, question|questions}``."""
    for rec in records(path):
        passage = first_key(rec, "context", "passage", "text", "document")
        qs = first_key(rec, "questions", "question")
        if isinstance(passage, str) and qs:
            opts.counts["qa_records"] += 1
            yield QuestionExample(passage.strip(), tuple([qs] if isinstance(qs, str) else qs))


def build(sources: Sequence[str], opts: BuildOptions) -> Iterator[QuestionExample]:
    """SQuAD-style JSON (nested or flattened) and QA-pair records; passages without questions skip."""
    for src in sources:
        if suffix(src) == ".json" and _is_squad(src):
            items = squad_examples(src, opts)
        else:
            items = qa_pair_examples(src, opts)
        for ex in items:
            if ex.questions:
                yield ex
            else:
                opts.counts["skipped_no_questions"] += 1


def _is_squad(path: str) -> bool:
    data = load_json(path)
    return isinstance(data, dict) and isinstance(data.get("data"), list)


MODE = Mode(
    name="question",
    learns="return insightful, relevant questions about a text",
    structure=QuestionExample,
    prompts=PROMPTS,
    compile=compile_question,
    build=build,
    metric="question_overlap",
    metrics=("question_overlap", "rougeL", "answerability"),
    sources="SQuAD-style JSON (v1/v2 nested or flattened), passage/question records",
)
