"""tuneforge.modes: tuning modes as data -- input structure, compiler to the chat IR, builders, metric.

No Ray here; modes import only ``tuneforge.data``, ``tuneforge.evaluation`` (and ``tuneforge.config`` to
materialise a job's modes). Importing this package registers every built-in mode and its metrics with
``tuneforge.evaluation.metric_table``. See docs/modes.md.
"""

from tuneforge.modes.base import BuildOptions, Mode, to_openai
from tuneforge.modes.table import BUILTIN, all_modes, get_mode, register

__all__ = ["BUILTIN", "BuildOptions", "Mode", "all_modes", "get_mode", "register", "to_openai"]
