"""Export and import of a prefix with TTLs, shared by the web (``views/transfer.py``) and the
CLI (``cli_transfer.py``).

- ``jsonl``: the file format (one JSON object per key, exact for every key and value);
- ``export``: a prefix's keys, page by page (``provider.dump``), as lines;
- ``importing``: parse a file, plan it against the store, apply the plan.
"""

from dashboard.mesh.transfer.export import ExportStats, export_lines, file_name
from dashboard.mesh.transfer.importing import (
    MODES,
    TTL_POLICIES,
    ImportResult,
    ParsedFile,
    Plan,
    PlannedKey,
    TooBig,
    apply,
    make_plan,
    parse,
    restore_plan,
    size_words,
)
from dashboard.mesh.transfer.jsonl import (
    Incomplete,
    InvalidLine,
    decode_line,
    encode_line,
    marker_line,
    record,
)

__all__ = [
    "MODES", "TTL_POLICIES", "ExportStats", "ImportResult", "InvalidLine", "ParsedFile", "Plan",
    "PlannedKey", "TooBig", "apply", "decode_line", "encode_line", "export_lines", "file_name",
    "make_plan", "parse", "record", "restore_plan", "Incomplete", "marker_line", "size_words",
]
