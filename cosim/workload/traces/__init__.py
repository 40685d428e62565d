"""Request-trace readers for the public trace formats (one room; docs/traces.md).

Formats: `mooncake` (JSONL, cosim.workload.trace), `azure` (Azure LLM inference traces
2023/2024 CSV), `bailian` (Qwen-Bailian JSONL, 16-token blocks), `burstgpt` (BurstGPT CSV) and
`cosim` (a run's requests.parquet). `detect_format` tells them apart from the file's start;
options.py holds the options every format shares (window, sampling, cap, time scaling).
"""

from cosim.workload.traces.bailian import read_bailian
from cosim.workload.traces.cosim_format import read_cosim
from cosim.workload.traces.csv_formats import read_csv_trace
from cosim.workload.traces.detect import FORMATS, detect_format
from cosim.workload.traces.options import TraceOptions, apply_options

__all__ = ["FORMATS", "TraceOptions", "apply_options", "detect_format", "read_bailian",
           "read_cosim", "read_csv_trace"]
