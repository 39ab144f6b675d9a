"""Depth evaluation: Monodepth2-exact metrics, protocols as data, condition-wise aggregation, reports.

Typical use::

    from robustdepth.evaluation import DepthEvaluator, get_protocol, write_results, format_table

    evaluator = DepthEvaluator(get_protocol("kitti_eigen"))
    for gt, pred, condition, name in frames:
        evaluator.add(gt, pred, condition=condition, name=name)
    summary = evaluator.summary()
    write_results("runs/x/results.json", summary, evaluator.protocol)
    print(format_table(summary))
"""

from robustdepth.evaluation.evaluate import (
    DepthEvaluator,
    evaluate_frame,
    load_results,
    post_process_disparity,
    write_results,
)
from robustdepth.evaluation.metrics import METRIC_NAMES, compute_depth_errors
from robustdepth.evaluation.protocols import PROTOCOLS, EvalProtocol, get_protocol
from robustdepth.evaluation.report import adverse_mean, format_table

__all__ = [
    "METRIC_NAMES",
    "PROTOCOLS",
    "DepthEvaluator",
    "EvalProtocol",
    "adverse_mean",
    "compute_depth_errors",
    "evaluate_frame",
    "format_table",
    "get_protocol",
    "load_results",
    "post_process_disparity",
    "write_results",
]
