"""Sweep reports: a Hydra multirun directory -> runs table, Pareto frontier, best config.

- :func:`load_multirun` (runs.py): one DataFrame row per run (overrides + summary.json)
- :func:`pareto_mask` (frontier.py): non-dominated points, both metrics maximised
- :func:`annotate`, :func:`best_configurations` (best.py): eligibility under an SLO
  attainment threshold, frontiers per scenario and group, best run per scenario and group
- :func:`sweep_jobs` (jobs.py): every job of a sweep, done / infeasible / failed / missing
- :func:`rescore` (rescore.py): SLO attainment and goodput under another SLO, from
  each run's requests.parquet
- :func:`write_report` (build.py): runs.csv, pareto.csv, best.json, jobs.csv, pareto.png
- `cosim-report` (cli.py: :func:`report_main`)

See docs/report.md.
"""

from cosim.report.best import annotate, best_configurations
from cosim.report.build import Report, build_report, write_report
from cosim.report.frontier import frontier_flags, pareto_mask
from cosim.report.jobs import Job, sweep_jobs
from cosim.report.rescore import rescore
from cosim.report.runs import Multirun, ReportError, load_multirun

__all__ = ["Job", "Multirun", "Report", "ReportError", "annotate", "best_configurations",
           "build_report", "frontier_flags", "load_multirun", "pareto_mask", "rescore",
           "sweep_jobs", "write_report"]
