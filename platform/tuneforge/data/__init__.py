"""tuneforge.data: pure data building blocks (no Ray here; the Ray Data glue calls these functions).

Read files in many formats into a chat IR, render and encode it with an exact loss mask, pack or pad
into batches, split train/eval deterministically, and plan dedup and mixing across sources.
"""

from tuneforge.data.encode import (
    EncodeResult,
    encode_conversation,
    encode_record,
    prompt_text,
    resolve_template,
)
from tuneforge.data.errors import DataError
from tuneforge.data.formats import SUPPORTED_FORMATS, FormatSpec, detect_format, record_to_ir
from tuneforge.data.ir import ROLES, Conversation, Message
from tuneforge.data.packing import collate, pack_examples, pad_examples, to_model_inputs
from tuneforge.data.readers import (
    ParsedFile,
    ProblemLog,
    read_conversations,
    read_source,
)
from tuneforge.data.templates import (
    CHATML,
    IGNORE_INDEX,
    TEMPLATES,
    ChatTemplate,
    get_template,
    render_prompt,
    render_text,
)

__all__ = [
    "CHATML",
    "IGNORE_INDEX",
    "ROLES",
    "SUPPORTED_FORMATS",
    "TEMPLATES",
    "ChatTemplate",
    "Conversation",
    "DataError",
    "EncodeResult",
    "FormatSpec",
    "Message",
    "ParsedFile",
    "ProblemLog",
    "collate",
    "detect_format",
    "encode_conversation",
    "encode_record",
    "get_template",
    "pack_examples",
    "pad_examples",
    "prompt_text",
    "read_conversations",
    "read_source",
    "record_to_ir",
    "render_prompt",
    "render_text",
    "resolve_template",
    "to_model_inputs",
]
