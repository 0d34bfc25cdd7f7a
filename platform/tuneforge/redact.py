"""Keep secrets out of everything tuneforge logs or writes: MLflow params and artifacts, run-dir files.

A value is a secret by its **key** or by its **shape**:

* By key (:func:`is_secret_key`), by **substring**, case-insensitively: a key holding ``TOKEN``,
  ``KEY``, ``SECRET``, ``PASSWORD`` or ``PASSWD`` anywhere (``PGPASSWORD``, ``OPENAI_KEY``,
  ``SSH_KEY``, ``TOKEN_VALUE``, ``api_token_v2``, ``AWS_SECRET_ACCESS_KEY``), or one of
  :data:`SECRET_FRAGMENTS` (``credential``, ``passphrase``, ``authorization``), is a secret key.
  The key is split into lowercase words at ``.``, ``_``, ``-``, spaces and camelCase boundaries
  (``apiKey`` -> ``api key``) only to recognise the names that merely *contain* those letters, so
  that config keys and metrics stay readable:

  - the tokenizer family and counts of tokens: a word ``tokeniz*`` / ``tokenis*`` (``tokenizer``,
    ``TOKENIZERS_PARALLELISM``, ``tokenized``) or ending in ``tokens`` (``max_new_tokens``,
    ``train_tokens``, ``tokens_per_second``, ``num_virtual_tokens``);
  - a vocabulary entry: ``token`` after a special-token word (``pad_token``, ``eos_token_id``; see
    :data:`VOCAB_TOKEN_WORDS`) or before an id/type word (``token_ids``, ``token_type_ids``);
  - a lookup key, not a credential: ``key``/``keys`` after a word of :data:`NON_CREDENTIAL_KEY_WORDS`
    (``sort_key``, ``cache_key``, ``missing_keys``) or before ``value(s)`` (``num_key_value_heads``);
  - English words that contain ``key`` (:data:`HARMLESS_KEY_FRAGMENTS`: ``keywords``, ``monkey``).

  Anything else holding one of the substrings is redacted: a false alarm costs a ``***`` in a log,
  a miss leaks a credential. ``keep_last`` / ``keep_best`` hold none of them.

* By shape (:func:`redact_text`), in any string value whatever its key: every URI in it has its
  userinfo password replaced (``http://user:s3cret@host`` -> ``http://user:***@host``) and its
  query parameters whose names are secret keys, or signatures (``sig``, ``X-Amz-Signature``),
  replaced (``?token=...`` -> ``?token=***``). A lone userinfo without a colon
  (``ssh://git@host``) is a user name by convention and is kept.

Redaction is for what is *recorded*: the real values are still what tuneforge connects with.

A leaf (the standard library only): the config loader redacts the ``config.yaml`` it writes and the
tracking layer what it logs, without either importing the other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REDACTED = "***"
"""What a secret is replaced with."""

SECRET_FRAGMENTS = ("password", "passwd", "passphrase", "secret", "credential", "authorization")
"""Substrings that make a key secret wherever they appear in it, with no exception."""

QUERY_SIGNATURE_WORDS = frozenset({"sig", "signature"})
"""Words that also make a URI *query parameter* secret: signed URLs (Azure SAS ``sig``,
S3 ``X-Amz-Signature``)."""

VOCAB_TOKEN_WORDS = frozenset(
    {"pad", "eos", "bos", "unk", "sep", "cls", "mask", "special", "start", "end", "eot", "per"}
)
"""Words that, right before ``token``, name a tokenizer's special token (``pad_token``,
``decoder_start_token_id``) or a per-token quantity (``per_token``), not a credential."""

TOKEN_ID_WORDS = frozenset({"id", "ids", "type", "types"})
"""Words that, right after ``token``, make it a vocabulary id (``token_ids``, ``token_type_ids``)."""

NON_CREDENTIAL_KEY_WORDS = frozenset(
    {
        "sort",
        "cache",
        "primary",
        "foreign",
        "partition",
        "group",
        "hash",
        "lookup",
        "dedup",
        "join",
        "index",
        "shard",
        "metric",
        "rng",
        "prng",
        "random",
        "missing",
        "unexpected",
        "mismatched",
        "unknown",
        "content",
        "role",
        "label",
    }
)
"""Words that, right before ``key``/``keys``, make it a lookup key (``sort_key``, ``cache_key``,
``missing_keys``), not a credential (``api_key``, ``ssh_key``, ``openai_key`` stay secret)."""

KEY_VALUE_WORDS = frozenset({"value", "values"})
"""Words that, right after ``key``, make it attention's key/value (``num_key_value_heads``)."""

HARMLESS_KEY_FRAGMENTS = (
    "keyword",
    "keyboard",
    "keystroke",
    "monkey",
    "donkey",
    "turkey",
    "whiskey",
    "hockey",
)
"""English words that contain ``key`` (``keywords``, ``monkeypatch``): removed before matching."""

SECRET_ENV_VARS = frozenset(
    {
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_TRACKING_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AZURE_STORAGE_ACCESS_KEY",
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_CLIENT_SECRET",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "DATABRICKS_TOKEN",
        "WANDB_API_KEY",
        "OPENAI_API_KEY",
        "RAY_AUTH_TOKEN",
    }
)
"""Credential variables of the libraries tuneforge drives, redacted even if the key rule missed them."""

_WORD_BOUNDARY = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")


def key_words(key: str) -> list[str]:
    """``"AWS_SECRET_ACCESS_KEY"`` -> ``["aws", "secret", "access", "key"]``; camelCase splits too."""
    return [word.lower() for word in _WORD_BOUNDARY.split(str(key)) if word]


_TOKENIZER_WORD = re.compile(r"tokeni[sz]\w*|tokens$")
"""The tokenizer family (``tokenizer``, ``tokenized``, ``tokenisation``) and counts (``*tokens``)."""


def _word_is_secret(words: list[str], index: int) -> bool:
    word = words[index]
    if any(fragment in word for fragment in SECRET_FRAGMENTS):
        return True
    before = words[index - 1] if index > 0 else None
    after = words[index + 1] if index + 1 < len(words) else None
    if "token" in _TOKENIZER_WORD.sub("", word):
        if word == "token" and (before in VOCAB_TOKEN_WORDS or after in TOKEN_ID_WORDS):
            return False
        return True
    for fragment in HARMLESS_KEY_FRAGMENTS:
        word = word.replace(fragment, "")
    if "key" in word:
        if word in ("key", "keys") and (before in NON_CREDENTIAL_KEY_WORDS or after in KEY_VALUE_WORDS):
            return False
        return True
    return False


def _segment_is_secret(words: list[str]) -> bool:
    return any(_word_is_secret(words, index) for index in range(len(words)))


def is_secret_key(key: str) -> bool:
    """True when a value stored under ``key`` must not be recorded (rule in the module docstring).

    A dotted key (``tracking.api_key``, a flattened param) is secret when any of its parts is.
    """
    if str(key).upper() in SECRET_ENV_VARS:
        return True
    return any(_segment_is_secret(key_words(part)) for part in str(key).split("."))


def _redact_query(query: str) -> str:
    if not query:
        return query
    parts = []
    for item in query.split("&"):
        name, sep, value = item.partition("=")
        secret = is_secret_key(name) or bool(QUERY_SIGNATURE_WORDS.intersection(key_words(name)))
        parts.append(f"{name}={REDACTED}" if sep and value and secret else item)
    return "&".join(parts)


def redact_uri(uri: str) -> str:
    """``uri`` with any userinfo password and secret query parameters replaced by ``***``.

    Anything that does not parse as a URI is returned unchanged.
    """
    try:
        parts = urlsplit(uri)
        password = parts.password
    except ValueError:
        return uri
    netloc = parts.netloc
    if password is not None:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:{REDACTED}@{host}"
    query = _redact_query(parts.query)
    if netloc == parts.netloc and query == parts.query:
        return uri
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def redact_text(text: str) -> str:
    """Every URI inside ``text`` passed through :func:`redact_uri`; the rest of the text is kept."""
    if "://" not in text:
        return text
    return _URI.sub(lambda m: redact_uri(m.group(0)), text)


def redact_value(key: str, value: Any) -> Any:
    """What may be recorded for ``value`` stored under ``key``.

    A secret key's value becomes ``***`` (whatever its type; a None or empty value stays, since
    it hides nothing). Otherwise strings have their URIs redacted and mappings/lists are walked
    with :func:`redact_mapping`; other values are returned as they are.
    """
    if is_secret_key(key):
        return value if value is None or value == "" else REDACTED
    return redact_mapping(value)


def redact_mapping(obj: Any) -> Any:
    """A redacted copy of ``obj``: mappings by key (:func:`redact_value`), lists and strings by shape.

    Recurses through nested dicts, lists and tuples (tuples come back as lists, as YAML and JSON
    would write them); the input is never modified.
    """
    if isinstance(obj, Mapping):
        return {key: redact_value(str(key), value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_mapping(item) for item in obj]
    if isinstance(obj, str):
        return redact_text(obj)
    return obj


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
