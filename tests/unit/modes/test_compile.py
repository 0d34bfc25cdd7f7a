"""Every mode's compiler on hand-written examples: the exact IR a structure becomes."""

from __future__ import annotations

import pytest

from tuneforge.data import render_prompt
from tuneforge.data.text_parse import list_items
from tuneforge.modes import BUILTIN, all_modes, get_mode
from tuneforge.modes.chat import ChatExample
from tuneforge.modes.chat_instruct import PROMPTS as CI
from tuneforge.modes.chat_instruct import ChatInstructExample, is_instruct_part
from tuneforge.modes.diff import DiffExample
from tuneforge.modes.domain import DomainExample
from tuneforge.modes.editor import PROMPTS as ED
from tuneforge.modes.editor import EditorExample
from tuneforge.modes.filter import PROMPTS as FI
from tuneforge.modes.filter import FilterExample
from tuneforge.modes.instruct import InstructExample
from tuneforge.modes.question import QuestionExample
from tuneforge.modes.reverse_chat import PROMPTS as RC
from tuneforge.modes.reverse_chat import ReverseChatExample
from tuneforge.modes.reverse_instruction import ReverseInstructionExample
from tuneforge.modes.schedule import ScheduleExample, parse_steps


def turns(conv) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in conv.messages]


def test_the_mode_table_has_the_eleven_modes_in_order() -> None:
    assert list(all_modes()) == [
        "instruct", "chat", "chat+instruct", "question", "editor", "schedule", "filter",
        "reverse-instruction", "reverse-chat", "diff", "domain",
    ]  # fmt: skip
    assert list(BUILTIN) == list(all_modes())
    for mode in all_modes().values():
        assert mode.inputs and mode.metric and mode.metrics
    with pytest.raises(ValueError, match="unknown mode 'nope'; known: instruct"):
        get_mode("nope")


def test_instruct() -> None:
    conv = get_mode("instruct").compile(InstructExample("Add the numbers.", "5", "2 and 3"))
    assert turns(conv)[1:] == [("user", "Add the numbers.\n\n2 and 3"), ("assistant", "5")]
    assert conv.messages[0].role == "system" and conv.mode == "instruct"


def test_chat_keeps_turns_and_own_system_prompt() -> None:
    ex = ChatExample(
        (("user", "Hi"), ("assistant", "Hello!"), ("user", "Bye"), ("assistant", "Bye!")), "Be kind."
    )
    assert turns(get_mode("chat").compile(ex)) == [("system", "Be kind."), *ex.turns]
    assert turns(get_mode("chat").compile(ChatExample(ex.turns)))[0] == ("user", "Hi")


def test_chat_instruct_switches_with_the_seed_004_marker() -> None:
    chat = ChatExample((("user", "Do you like movies?"), ("assistant", "Yes, I do.")))
    conv = get_mode("chat+instruct").compile(
        ChatInstructExample(chat, InstructExample("Summarize X.", "X is..."))
    )
    assert turns(conv)[1:] == [
        ("user", "Do you like movies?"), ("assistant", "Yes, I do."), ("user", "### Instruction"),
        ("assistant", CI["ack"]), ("user", "Summarize X."), ("assistant", "X is..."),
    ]  # fmt: skip
    assert is_instruct_part(conv)
    assert not is_instruct_part(get_mode("chat+instruct").compile(ChatInstructExample(chat)))


def test_question_numbers_the_questions() -> None:
    conv = get_mode("question").compile(QuestionExample("Paris is in France.", ("Where is Paris?", "Why?")))
    assert turns(conv)[1:] == [("user", "Paris is in France."), ("assistant", "1. Where is Paris?\n2. Why?")]
    assert list_items(conv.messages[-1].content) == ["Where is Paris?", "Why?"]


def test_editor() -> None:
    conv = get_mode("editor").compile(EditorExample("He go home.", "He goes home."))
    assert turns(conv) == [("system", ED["system"]), ("user", "He go home."), ("assistant", "He goes home.")]


def test_schedule_is_a_numbered_list() -> None:
    conv = get_mode("schedule").compile(ScheduleExample("Make tea", ("Boil water", "Add tea", "Wait")))
    assert conv.messages[-1].content == "1. Boil water\n2. Add tea\n3. Wait"
    assert parse_steps(conv.messages[-1].content) == [(1, "Boil water"), (2, "Add tea"), (3, "Wait")]


def test_filter_lists_filters_and_keeps_parts() -> None:
    conv = get_mode("filter").compile(FilterExample("A rains. B bakes.", ("about weather",), ("A rains.",)))
    assert conv.messages[1].content == "Filters:\n- about weather\n\nText:\nA rains. B bakes."
    assert conv.messages[2].content == "A rains."
    empty = get_mode("filter").compile(FilterExample("B bakes.", ("about weather",), ()))
    assert empty.messages[-1].content == FI["none"]


def test_reverse_instruction_swaps() -> None:
    conv = get_mode("reverse-instruction").compile(ReverseInstructionExample("5", "Add 2 and 3."))
    assert turns(conv)[1:] == [("user", "5"), ("assistant", "Add 2 and 3.")]


def test_reverse_chat_makes_the_user_turns_the_targets() -> None:
    ex = ReverseChatExample((("user", "Hi"), ("assistant", "Hello!"), ("user", "Bye"), ("assistant", "Ciao")))
    conv = get_mode("reverse-chat").compile(ex)
    assert turns(conv) == [
        ("system", RC["system"]), ("user", RC["start"]),
        ("assistant", "Hi"), ("user", "Hello!"), ("assistant", "Bye"),
    ]  # fmt: skip
    assert render_prompt(conv).endswith("<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n")


def test_diff() -> None:
    conv = get_mode("diff").compile(DiffExample("a\nb", "--- before\n+++ after\n@@ -2 +2 @@\n-b\n+c", "a\nc"))
    assert conv.messages[1].content == "Text:\na\nb\n\nDiff:\n--- before\n+++ after\n@@ -2 +2 @@\n-b\n+c"
    assert conv.messages[2].content == "a\nc"


def test_domain_is_raw_text() -> None:
    conv = get_mode("domain").compile(DomainExample("Raw domain text."))
    assert conv.mode == "pretrain" and conv.text == "Raw domain text." and conv.messages[0].trained


def test_modes_import_without_ray() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tuneforge.modes, tuneforge.modes.baselines, tuneforge.modes.selfinstruct, "
        "tuneforge.modes.materialize\n"
        "tuneforge.modes.all_modes()\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
