"""Export and import of a prefix with TTLs, shared by the web (``views/transfer.py``) and the
CLI (``cli/transfer.py``).

- ``jsonl``: the file format (one JSON object per key, exact for every key and value);
- ``export``: a prefix's keys, page by page (``provider.dump``), as lines; a prefix with
  no keys is refused (``NothingToExport``, with the closest service prefixes);
- an import, in three steps, one module each:
  - ``import_file``: read a file (``parse``), every line checked, nothing else read;
  - ``import_plan``: plan it against the store (``make_plan``, ``restore_plan``): modes,
    TTL rules, refusals;
  - ``import_apply``: apply the plan (``apply``): the writes, the service indexes, the
    audit hooks.
"""

from dashboard.mesh.transfer.export import (
    ExportStats,
    NothingToExport,
    close_prefixes,
    export_lines,
    file_name,
)
from dashboard.mesh.transfer.import_apply import ImportResult, apply
from dashboard.mesh.transfer.import_file import ParsedFile, TooBig, parse, size_words
from dashboard.mesh.transfer.import_plan import (
    MODES,
    TTL_POLICIES,
    Plan,
    PlannedKey,
    make_plan,
    restore_plan,
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
    "MODES", "TTL_POLICIES", "ExportStats", "ImportResult", "InvalidLine", "NothingToExport",
    "ParsedFile", "Plan", "close_prefixes",
    "PlannedKey", "TooBig", "apply", "decode_line", "encode_line", "export_lines", "file_name",
    "make_plan", "parse", "record", "restore_plan", "Incomplete", "marker_line", "size_words",
]
