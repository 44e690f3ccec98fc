"""GCleaner Figure 10: t-SNE of clean and triggered test-graph embeddings, backdoored vs defended model.

Reads each main-sweep GCleaner run's ``embeddings.npz`` artifact (graph embeddings of the clean test graphs
and of the triggered non-target test graphs, from the backdoored and the defended model). Per run and model,
clean and triggered points are embedded together by scikit-learn's ``TSNE`` (seeded, PCA init, perplexity
min(30, (n-1)/3)); at most ``max_points`` of each kind, drawn by a seeded generator. Clean graphs are
coloured by class, triggered graphs red crosses: the paper's reading is that triggered graphs form their own
cluster before the defense and join their true classes after it.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from gnnsec.report.catalog import ARTIFACT, ITEM, PARAM
from gnnsec.report.figures import FigureResult, _plt
from gnnsec.report.runs import ArtifactReader, param, subsweep
from gnnsec.report.tables import labelled

log = logging.getLogger(__name__)


def tsne_2d(points: np.ndarray, seed: int = 0) -> np.ndarray:
    from sklearn.manifold import TSNE

    perplexity = float(max(2.0, min(30.0, (len(points) - 1) / 3)))
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
        points.astype(np.float64)
    )


def fig10_data(
    runs: pd.DataFrame, reader: ArtifactReader, max_points: int = 300, seed: int = 0
) -> pd.DataFrame:
    """Columns: panel, model (backdoored/defended), kind (clean/triggered), label, x, y; one seed per panel."""
    df = subsweep(runs, "main")
    df = df[param(df, PARAM["defense"]) == "gcleaner"]
    df = df.sort_values(f"params.{PARAM['seed']}") if f"params.{PARAM['seed']}" in df else df
    df = df.drop_duplicates([f"params.{PARAM['dataset']}", f"params.{PARAM['attack']}"])
    parts = []
    rng = np.random.default_rng(seed)
    panels = param(df, PARAM["dataset"]).astype(str) + " / " + labelled(param(df, PARAM["attack"]), "attack")
    seeds = param(df, PARAM["seed"])
    for idx, run in df.iterrows():
        arrays = reader.npz(run["run_id"], ARTIFACT["embeddings"])
        if not arrays:
            continue
        panel = panels[idx]
        labels = np.asarray(arrays.get("labels", []))
        for model, prefix in (("backdoored", "backdoor"), ("defended", "defended")):
            clean, trig = arrays.get(f"{prefix}_clean"), arrays.get(f"{prefix}_triggered")
            if clean is None or trig is None or not len(clean) or not len(trig):
                continue
            ci = np.sort(rng.permutation(len(clean))[:max_points])
            ti = np.sort(rng.permutation(len(trig))[:max_points])
            xy = tsne_2d(np.concatenate([clean[ci], trig[ti]]), seed)
            n = len(ci)
            parts.append(
                pd.DataFrame(
                    {
                        "panel": panel,
                        "model": model,
                        "kind": ["clean"] * n + ["triggered"] * len(ti),
                        "label": list(labels[ci] if len(labels) == len(clean) else [-1] * n) + [-1] * len(ti),
                        "x": xy[:, 0],
                        "y": xy[:, 1],
                        "seed": seeds[idx],
                    }
                )
            )
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def fig10(runs: pd.DataFrame, reader: ArtifactReader) -> FigureResult | None:
    data = fig10_data(runs, reader)
    if data.empty:
        return None
    plt = _plt()
    panels = sorted(dict.fromkeys(data["panel"]))
    ncol = min(4, len(panels))
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(2 * nrow, ncol, figsize=(3.8 * ncol + 0.4, 6.6 * nrow), squeeze=False)
    colors = [c for k, c in enumerate(plt.get_cmap("tab10").colors) if k != 3]  # red is the trigger's
    for k in range(len(panels), nrow * ncol):
        axes[2 * (k // ncol)][k % ncol].axis("off")
        axes[2 * (k // ncol) + 1][k % ncol].axis("off")
    for j, panel in enumerate(panels):
        for i, model in enumerate(("backdoored", "defended")):
            ax = axes[2 * (j // ncol) + i][j % ncol]
            part = data[(data["panel"] == panel) & (data["model"] == model)]
            for label, g in part[part["kind"] == "clean"].groupby("label"):
                pts = ax.scatter(
                    g["x"],
                    g["y"],
                    s=6,
                    color=colors[int(label) % len(colors)],
                    alpha=0.6,
                    label=f"clean, class {label}",
                )
                pts.set_gid(f"clean|{label}")
            trig = part[part["kind"] == "triggered"]
            pts = ax.scatter(
                trig["x"], trig["y"], s=10, marker="x", color="red", alpha=0.8, label="triggered"
            )
            pts.set_gid("triggered")
            ax.set_title(f"{panel}\n{model} model", fontsize=9)
            ax.set_xlabel("t-SNE 1 (a.u.)")
            ax.set_ylabel("t-SNE 2 (a.u.)")
            ax.tick_params(labelsize=7)
            if i == 0 and j == 0:
                ax.legend(fontsize=6, markerscale=2)
    caption = f"{ITEM['gcleaner_fig10'].caption} (seed {data['seed'].iloc[0]}; TSNE random_state=0)"
    fig.suptitle(caption, fontsize=11)
    fig.tight_layout()
    return FigureResult("gcleaner_fig10", caption, data, fig)
