"""Forget-and-Explain Tables 1 and 2 from the ``unlearning`` sub-sweep's runs.

Table 1: per dataset, backbone and unlearner: RA before/after unlearning (percent of the total attribution
through the forget set), HS and ESD (attribution shifts), GED (edge symmetric difference of the 2-hop proxy
graphs) and GRS (surrogate rules that disappeared). Table 2: the RA drop (pre - post, percent) and the
loss-threshold membership-inference ROC-AUC before and after. Metric names: ``catalog.METRIC``. The paper's
means for Cora and CiteSeer: ``gnnsec/report/reference/forget_explain_table{1,2}.csv``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gnnsec.report.catalog import ITEM, METRIC, PARAM
from gnnsec.report.runs import metric, param, subsweep
from gnnsec.report.summary import Table, attach_paper, melt_reference, summarize
from gnnsec.report.tables import labelled, read_reference

GROUPS = ["dataset", "model", "unlearner"]


def _groups(df: pd.DataFrame) -> dict[str, pd.Series]:
    return {
        "dataset": param(df, PARAM["dataset"]),
        "model": param(df, PARAM["model"]),
        "unlearner": labelled(param(df, PARAM["unlearner"]), "unlearner"),
    }


def fe_table1(runs: pd.DataFrame, reference: Path | str | None = None) -> Table:
    df = subsweep(runs, "unlearning")
    values = {
        "ra_pre": 100 * metric(df, METRIC["ra_pre"]),
        "ra_post": 100 * metric(df, METRIC["ra_post"]),
        "hs": metric(df, METRIC["hs"]),
        "esd": metric(df, METRIC["esd"]),
        "ged": 2 * metric(df, METRIC["ged"]),  # ordered pairs, the paper's unit (gnnsec.verify.metrics.ged)
        "grs": metric(df, METRIC["grs"]),
        "acc_before": 100 * metric(df, METRIC["unlearn_acc_before"]),
        "acc_after": 100 * metric(df, METRIC["unlearn_acc_after"]),
        "seconds": metric(df, METRIC["unlearn_seconds"]),
    }
    frame = summarize(_groups(df), values, param(df, PARAM["seed"]))
    ref = read_reference(ITEM["fe_table1"].reference, reference)
    paper = melt_reference(ref, GROUPS, {k: k for k in ("ra_pre", "ra_post", "hs", "esd", "ged", "grs")})
    frame = attach_paper(frame, paper, GROUPS)
    return Table(
        "fe_table1",
        ITEM["fe_table1"].caption,
        frame,
        GROUPS,
        list(values),
        "RA in percent; GED in ordered node pairs (2 x undirected edges), the unit of the paper's counts; acc_before/after: test accuracy of the model before/after unlearning.",
    )


def fe_table2(runs: pd.DataFrame, reference: Path | str | None = None) -> Table:
    df = subsweep(runs, "unlearning")
    values = {
        "ra_drop": 100 * (metric(df, METRIC["ra_pre"]) - metric(df, METRIC["ra_post"])),
        "mi_pre": metric(df, METRIC["mi_pre"]),
        "mi_post": metric(df, METRIC["mi_post"]),
    }
    frame = summarize(_groups(df), values, param(df, PARAM["seed"]))
    ref = read_reference(ITEM["fe_table2"].reference, reference)
    paper = melt_reference(ref, GROUPS, {k: k for k in values})
    frame = attach_paper(frame, paper, GROUPS)
    return Table(
        "fe_table2",
        ITEM["fe_table2"].caption,
        frame,
        GROUPS,
        list(values),
        "ra_drop = RA_pre - RA_post (percent points); MI: loss-threshold attack ROC-AUC.",
    )


UNLEARNING_TABLES = {"fe_table1": fe_table1, "fe_table2": fe_table2}
