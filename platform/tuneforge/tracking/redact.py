"""Secret redaction for what tracking logs: :mod:`tuneforge.redact`, re-exported for the tracking layer.

It lives in a top-level leaf because the config loader redacts too (``save_config``), and config may
not import tracking (tracking imports config).
"""

from tuneforge.redact import (
    HARMLESS_KEY_FRAGMENTS,
    KEY_VALUE_WORDS,
    NON_CREDENTIAL_KEY_WORDS,
    QUERY_SIGNATURE_WORDS,
    REDACTED,
    SECRET_ENV_VARS,
    SECRET_FRAGMENTS,
    TOKEN_ID_WORDS,
    VOCAB_TOKEN_WORDS,
    is_secret_key,
    key_words,
    redact_mapping,
    redact_text,
    redact_uri,
    redact_value,
)

__all__ = [
    "HARMLESS_KEY_FRAGMENTS",
    "KEY_VALUE_WORDS",
    "NON_CREDENTIAL_KEY_WORDS",
    "QUERY_SIGNATURE_WORDS",
    "REDACTED",
    "SECRET_ENV_VARS",
    "SECRET_FRAGMENTS",
    "TOKEN_ID_WORDS",
    "VOCAB_TOKEN_WORDS",
    "is_secret_key",
    "key_words",
    "redact_mapping",
    "redact_text",
    "redact_uri",
    "redact_value",
]
