"""Static HTML reports: the training page (``<run>/web/index.html``), the test results page, the run
report (``<run>/report.html``), loss plots.

Pages are rendered with Jinja2 (autoescape on), reference images by relative path and need no server
or network; every file is written atomically so a page open in a browser is never half written.
"""

from cyclegan.report.html import ResultsPage, TrainingPage, collect_result_rows, write_results_page
from cyclegan.report.plots import plot_losses
from cyclegan.report.run_report import parse_loss_log, write_run_report
from cyclegan.report.visuals import save_visuals, tensor_to_image

__all__ = [
    "ResultsPage",
    "TrainingPage",
    "collect_result_rows",
    "parse_loss_log",
    "plot_losses",
    "save_visuals",
    "tensor_to_image",
    "write_results_page",
    "write_run_report",
]
