"""tuneforge.data.preference: preference data (DPO/IPO/ORPO/SimPO pairs, KTO labelled replies), pure Python.

Files in LLaMA-Factory, OpenAI, StackExchange, Anthropic HH and TRL layouts -> ``PreferenceRecord``
(one prompt, the chosen and rejected replies or one labelled reply) -> token columns rendered
through the SFT templates with the reply alone trained. No Ray here: the pipeline calls these
functions inside Ray Data (``record_to_row``/``rows_to_records`` between stages,
``encode_preference_batch`` in ``map_batches``).
"""

from tuneforge.data.preference.batch import PREFERENCE_COUNTERS, PreferenceSettings, encode_preference_batch
from tuneforge.data.preference.encode import (
    PAIRED_COLUMNS,
    UNPAIRED_COLUMNS,
    PreferenceEncoding,
    encode_preference,
    encode_preference_result,
    fit_lengths,
    pad_id,
    preference_pieces,
)
from tuneforge.data.preference.formats import (
    PREFERENCE_FORMAT_NAMES,
    PREFERENCE_FORMATS,
    detect_preference_format,
    to_preference,
)
from tuneforge.data.preference.ir import PAIRED, UNPAIRED, PreferenceRecord, unpair
from tuneforge.data.preference.readers import (
    ParsedPreferenceFile,
    catalog_entry,
    is_preference_file,
    iter_preference,
    parse_preference_bytes,
    read_preference_file,
)
from tuneforge.data.preference.rows import (
    PREFERENCE_ROW_COLUMNS,
    record_to_row,
    row_to_record,
    rows_to_records,
)
from tuneforge.data.preference.split import dedup_records, preference_side, split_records
from tuneforge.data.preference.stats import preference_stats

__all__ = [
    "PAIRED",
    "PAIRED_COLUMNS",
    "PREFERENCE_COUNTERS",
    "PREFERENCE_FORMATS",
    "PREFERENCE_FORMAT_NAMES",
    "PREFERENCE_ROW_COLUMNS",
    "UNPAIRED",
    "UNPAIRED_COLUMNS",
    "ParsedPreferenceFile",
    "PreferenceEncoding",
    "PreferenceRecord",
    "PreferenceSettings",
    "catalog_entry",
    "dedup_records",
    "detect_preference_format",
    "encode_preference",
    "encode_preference_batch",
    "encode_preference_result",
    "fit_lengths",
    "is_preference_file",
    "iter_preference",
    "pad_id",
    "parse_preference_bytes",
    "preference_pieces",
    "preference_side",
    "preference_stats",
    "read_preference_file",
    "record_to_row",
    "row_to_record",
    "rows_to_records",
    "split_records",
    "to_preference",
    "unpair",
]
