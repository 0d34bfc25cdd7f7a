"""Secret redaction for what tracking logs: :mod:`tuneforge.redact`, re-exported for the tracking layer.

It lives in a top-level leaf because the config loader redacts too (``save_config``), and config may
not import tracking (tracking imports config).
"""

from tuneforge.redact import (
    KEY_QUALIFIERS,
    QUERY_SIGNATURE_WORDS,
    REDACTED,
    SECRET_ENV_VARS,
    SECRET_WORDS,
    is_secret_key,
    key_words,
    redact_mapping,
    redact_text,
    redact_uri,
    redact_value,
    redacted_environment,
)

__all__ = [
    "KEY_QUALIFIERS",
    "QUERY_SIGNATURE_WORDS",
    "REDACTED",
    "SECRET_ENV_VARS",
    "SECRET_WORDS",
    "is_secret_key",
    "key_words",
    "redact_mapping",
    "redact_text",
    "redact_uri",
    "redact_value",
    "redacted_environment",
]
