"""tuneforge.data: pure data building blocks (no Ray here; the Ray Data glue calls these functions).

Read files into a chat IR, render and encode it with an exact loss mask, pack or pad into batches,
and split train/eval deterministically.
"""

from tuneforge.data.errors import DataError
from tuneforge.data.ir import ROLES, Conversation, Message
from tuneforge.data.packing import collate, pack_examples, pad_examples, padding_share, to_model_inputs
from tuneforge.data.readers import (
    SUPPORTED_FORMATS,
    conversations_from_bytes,
    detect_format,
    iter_raw_records,
    read_conversations,
    record_to_ir,
)
from tuneforge.data.split import is_eval
from tuneforge.data.templates import (
    CHATML,
    CHATML_SPECIAL_TOKENS,
    IGNORE_INDEX,
    TEMPLATES,
    ChatTemplate,
    encode_conversation,
    get_template,
    render_prompt,
    render_text,
)

__all__ = [
    "CHATML",
    "CHATML_SPECIAL_TOKENS",
    "IGNORE_INDEX",
    "ROLES",
    "SUPPORTED_FORMATS",
    "TEMPLATES",
    "ChatTemplate",
    "Conversation",
    "DataError",
    "Message",
    "collate",
    "conversations_from_bytes",
    "detect_format",
    "encode_conversation",
    "get_template",
    "is_eval",
    "iter_raw_records",
    "pack_examples",
    "pad_examples",
    "padding_share",
    "read_conversations",
    "record_to_ir",
    "render_prompt",
    "render_text",
    "to_model_inputs",
]
