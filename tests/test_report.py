"""gnnsec.report: paper tables and figures computed from MLflow runs (synthetic runs in a tmp store).

Figures are checked by content: the plotted line/bar data equals the runs' metrics and the CSV behind the
figure; tables by their numbers beside the paper's; the report lists what it could not render.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gnnsec.report import build_report, load_runs, table3
from gnnsec.report.figures import factor_figure, fig5
from gnnsec.report.runs import ArtifactReader
from gnnsec.report.summary import differences, markdown
from gnnsec.report.tables import table4, table9
from gnnsec.tracking import FACTOR_TAG, SUBSWEEP_TAG, TrackerSettings, TrialTracker

EXP = "gnnsec/rep"


def _config(attack: str, defense: str, seed: int, **extra: object) -> dict:
    cfg = {
        "data": {"dataset": "AIDS", "split_seed": seed, "holding_rate": 0.03},
        "model": {"name": "GIN"},
        "train": {"seed": seed},
        "attack": {"name": attack, "injection_ratio": 0.05, "seed": seed},
        "defense": {"name": defense, "seed": seed, "params": {}},
    }
    for dotted, value in extra.items():
        node = cfg
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return cfg


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    return make_store(tmp_path_factory.mktemp("report"))


def make_store(tmp: Path) -> tuple[str, str, Path]:
    """A tracked experiment of synthetic runs (main, injection_ratio, recovery_explainer, loss_components)
    and a reference folder; returns (tracking URI, reference folder, tmp)."""
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    tracker = TrialTracker(TrackerSettings(uri, EXP, (tmp / "art").as_uri()))
    i = 0
    rng = np.random.default_rng(0)

    def add(cfg: dict, metrics: dict, sub: str, factor: str | None = None, status: str = "FINISHED") -> str:
        nonlocal i
        i += 1
        tid = f"t{i}"
        tracker.start(tid, f"r{i}", cfg, {SUBSWEEP_TAG: sub, **({FACTOR_TAG: factor} if factor else {})})
        tracker.log_metrics(tid, metrics)
        tracker.finish(tid, status)
        return tid

    for seed, (bd_asr, gc_asr, ft_asr) in enumerate([(0.9, 0.1, 0.5), (1.0, 0.2, 0.7)]):
        for attack in ("sub_ba", "gta"):
            base = {
                "backdoor_asr": bd_asr,
                "backdoor_acc": 0.9,
                "backdoor_n": 400,
                "backdoor_asr_n": 320,
                "clean_acc_class0": 0.8,
                "clean_acc_class1": 0.9 + 0.05 * seed,
                "backdoor_acc_class0": 0.7,
                "backdoor_acc_class1": 0.95,
            }
            gc = {"defended_asr": gc_asr, "defended_acc": 0.95, "defended_n": 400, "defended_asr_n": 320}
            tid = add(
                _config(attack, "gcleaner", seed),
                {**base, **gc, "defended_acc_class0": 0.6 + 0.1 * seed, "defended_acc_class1": 0.9},
                "main",
            )
            tracker.log_history(
                tid,
                {
                    "defense": [
                        {"epoch": e, "val_acc": 0.8 + 0.01 * e + 0.02 * seed, "val_flip": 0.5 - 0.1 * e}
                        for e in range(4)
                    ]
                },
            )
            emb = {
                "labels": rng.integers(0, 2, 30),
                "backdoor_clean": rng.normal(size=(30, 8)),
                "backdoor_triggered": rng.normal(3, 1, size=(20, 8)),
                "defended_clean": rng.normal(size=(30, 8)),
                "defended_triggered": rng.normal(size=(20, 8)),
            }
            path = tmp / f"emb{i}" / "embeddings.npz"
            path.parent.mkdir()
            np.savez(path, **emb)
            tracker.log_file(tid, path)
            add(
                _config(attack, "finetune", seed),
                {**base, "defended_asr": ft_asr, "defended_acc": 0.85},
                "main",
            )
        for ratio, asr in ((0.01, 0.3), (0.05, 0.1), (0.09, 0.05)):
            for defense, shift in (("gcleaner", 0.0), ("finetune", 0.4)):
                add(
                    _config("sub_ba", defense, seed, attack__injection_ratio=ratio),
                    {
                        "backdoor_asr": 0.8 + ratio + 0.02 * seed,
                        "backdoor_acc": 0.9,
                        "defended_asr": asr + shift + 0.02 * seed,
                        "defended_acc": 0.9 - shift / 4,
                    },
                    "injection_ratio",
                    "attack.injection_ratio",
                )
        for explainer, sim in (("random", 0.5), ("gnnexplainer", 0.7)):
            add(
                _config("sub_ba", "gcleaner", seed, defense__params__recovery_explainer=explainer),
                {
                    "defended_asr": 0.1,
                    "defended_acc": 0.9,
                    "recovery_similarity": sim + 0.01 * seed,
                    "recovery_asr": 0.9,
                },
                "recovery_explainer",
                "defense.params.recovery_explainer",
            )
        for flags, asr in (((False, False, False), 0.9), ((True, True, True), 0.05)):
            add(
                _config(
                    "sub_ba",
                    "gcleaner",
                    seed,
                    defense__params__l1_unlearn=flags[0],
                    defense__params__l2_unlearn=flags[1],
                    defense__params__l_explain=flags[2],
                ),
                {"defended_asr": asr, "defended_acc": 0.9},
                "loss_components",
            )
    add(_config("sub_ba", "gcleaner", 9), {"defended_asr": 0.0}, "main", status="FAILED")
    ref = tmp / "ref"
    ref.mkdir()
    pd.DataFrame(
        [
            ["AIDS", "Sub-BA", "none", 98.0, 97.0],
            ["AIDS", "Sub-BA", "gcleaner", 6.64, 95.37],
            ["AIDS", "Sub-BA", "finetune", 20.0, 90.0],
        ],
        columns=["dataset", "attack", "defense", "asr", "acc"],
    ).to_csv(ref / "gcleaner_table3.csv", index=False)
    pd.DataFrame(
        [["AIDS", "Random", "Sub-BA", 0.685, 95.76, 15.25]],
        columns=["dataset", "recovery_explainer", "attack", "similarity", "recovery_asr", "unlearn_asr"],
    ).to_csv(ref / "gcleaner_table4.csv", index=False)
    pd.DataFrame(
        [["AIDS", "Sub-BA", 0, 0, 0, 95.84, 97.14], ["AIDS", "Sub-BA", 1, 1, 1, 6.64, 95.37]],
        columns=["dataset", "attack", "l1_unlearn", "l2_unlearn", "l_explain", "asr", "acc"],
    ).to_csv(ref / "gcleaner_table9.csv", index=False)
    return uri, str(ref), tmp


def _row(table: pd.DataFrame, **keys: object) -> pd.Series:
    mask = np.ones(len(table), dtype=bool)
    for k, v in keys.items():
        mask &= table[k].astype(str) == str(v)
    assert mask.sum() == 1, (keys, table)
    return table[mask].iloc[0]


def test_table3_aggregates_seeds_and_defenses(store: tuple[str, str, Path]) -> None:
    uri, ref, _ = store
    runs = load_runs(EXP, uri)
    assert set(runs["status"]) == {"FINISHED"}  # the FAILED run is left out
    t = table3(runs, ref)
    f = t.frame
    before = _row(f, attack="Sub-BA", defense="none", metric="asr")
    assert before["ours_mean"] == pytest.approx(95.0) and before["ours_std"] == pytest.approx(5.0)
    assert before["seeds"] == 2 and before["runs"] == 2  # the backdoored model once per seed
    assert before["graphs"] == 320 and _row(f, attack="Sub-BA", defense="none", metric="acc")["graphs"] == 400
    assert before["paper"] == pytest.approx(98.0)
    gc = _row(f, attack="Sub-BA", defense="gcleaner", metric="asr")
    assert gc["ours_mean"] == pytest.approx(15.0) and gc["paper"] == pytest.approx(6.64)
    assert _row(f, attack="Sub-BA", defense="finetune", metric="asr")["ours_mean"] == pytest.approx(60.0)
    assert pd.isna(_row(f, attack="GTA", defense="gcleaner", metric="asr")["paper"])  # not in this reference
    assert list(dict.fromkeys(f["defense"])) == ["none", "finetune", "gcleaner"]  # the paper's column order
    md = markdown(t)
    assert (
        "| AIDS | Sub-BA | gcleaner | 15.00±5.00 (6.64) | 95.00±0.00 (95.37) | 2 | asr 320, acc 400 |" in md
    )
    diff = differences(t)  # finetune ASR 60 vs the paper's 20: 40 points; gcleaner 15 vs 6.64 is within 10
    assert list(zip(diff["where"], diff["metric"])) == [("AIDS / Sub-BA / finetune", "asr")]


def test_tables_4_and_9_beside_the_paper(store: tuple[str, str, Path]) -> None:
    uri, ref, _ = store
    runs = load_runs(EXP, uri)
    t4 = table4(runs, ref).frame
    sim = _row(t4, recovery_explainer="Random", metric="similarity")
    assert sim["ours_mean"] == pytest.approx(0.505) and sim["paper"] == pytest.approx(0.685)
    assert _row(t4, recovery_explainer="Random", metric="recovery_asr")["ours_mean"] == pytest.approx(90.0)
    assert _row(t4, recovery_explainer="GNNExplainer", metric="unlearn_asr")["ours_mean"] == pytest.approx(
        10.0
    )
    t9 = table9(runs, ref).frame
    on = _row(t9, l1_unlearn=1, l2_unlearn=1, l_explain=1, metric="asr")
    assert on["ours_mean"] == pytest.approx(5.0) and on["paper"] == pytest.approx(6.64)
    assert _row(t9, l1_unlearn=0, l2_unlearn=0, l_explain=0, metric="asr")["paper"] == pytest.approx(95.84)


def test_factor_figure_plots_the_runs_metrics(store: tuple[str, str, Path]) -> None:
    uri, ref, _ = store
    runs = load_runs(EXP, uri)
    result = factor_figure(runs, "gcleaner_fig6", ref)
    assert result is not None
    axes = {(ax.get_title(), ax.get_ylabel()): ax for ax in result.fig.axes}
    ax = axes[("AIDS / Sub-BA", "ASR (%)")]
    assert ax.get_xlabel().startswith("injection ratio") and "%" in ax.get_xlabel()
    lines = {ln.get_gid(): ln for ln in ax.lines if ln.get_gid()}
    assert {"ours|gcleaner", "ours|finetune", "ours|none", "paper|gcleaner", "paper|finetune"} <= set(lines)
    # GCleaner's ASR per injection ratio, straight from the runs: mean over the two seeds, in percent
    sub = runs[(runs["subsweep"] == "injection_ratio") & (runs["params.defense.name"] == "gcleaner")]
    expect = (100 * sub.groupby("params.attack.injection_ratio")["metrics.defended_asr"].mean()).sort_index()
    gc = lines["ours|gcleaner"]
    assert list(gc.get_xdata()) == pytest.approx([100 * x for x in expect.index])
    assert list(gc.get_ydata()) == pytest.approx(list(expect))
    data = result.data
    csv_gc = data[(data["line"] == "gcleaner") & (data["metric"] == "asr") & (data["series"] == "ours")]
    assert list(csv_gc["mean"]) == pytest.approx(list(gc.get_ydata()))
    assert list(csv_gc["std"]) == pytest.approx([1.0, 1.0, 1.0]) and set(csv_gc["seeds"]) == {2}
    paper = lines["paper|gcleaner"]  # the paper's Table 3 point at its default ratio (5%), dashed
    assert list(paper.get_xdata()) == [5.0] and list(paper.get_ydata()) == [6.64]
    assert paper.get_linestyle() == "--"


def test_fig5_bars_are_the_per_class_accuracies(store: tuple[str, str, Path]) -> None:
    uri, ref, _ = store
    result = fig5(load_runs(EXP, uri), ref)
    assert result is not None
    ax = next(a for a in result.fig.axes if a.get_title() == "AIDS / Sub-BA")
    from matplotlib.container import BarContainer

    heights = {
        c.get_label(): [p.get_height() for p in c] for c in ax.containers if isinstance(c, BarContainer)
    }
    assert heights["clean"] == pytest.approx([80.0, 92.5])
    assert heights["defended"] == pytest.approx([65.0, 90.0])
    assert heights["backdoored"] == pytest.approx([70.0, 95.0])
    assert ax.get_ylabel() == "test accuracy (%)"


def test_build_report_renders_all_it_can_and_lists_the_rest(store: tuple[str, str, Path]) -> None:
    uri, ref, tmp = store
    out = tmp / "out"
    written = build_report(EXP, uri, out, ref, formats=("png", "pdf"))
    names = {p.name for p in written["tables"] + written["figures"]}
    for stem in ("gcleaner_table3", "gcleaner_table4", "gcleaner_table9"):
        assert {f"{stem}.csv", f"{stem}.md"} <= names
    for stem in ("gcleaner_fig5", "gcleaner_fig6", "gcleaner_fig10", "gcleaner_unlearn_epochs"):
        assert {f"{stem}.csv", f"{stem}.png", f"{stem}.pdf"} <= names
        assert (out / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
    skipped = pd.read_csv(out / "skipped.csv")
    reasons = dict(zip(skipped["item"].str.extract(r"(Table \d|Figure \d+)")[0], skipped["reason"]))
    assert reasons["Table 7"] == "no runs of sub-sweep detection"
    assert reasons["Figure 12"] == "no runs of sub-sweep trigger_size"
    assert reasons["Table 1"] == "no runs of sub-sweep unlearning"
    rendered = {Path(p).stem for p in names}
    assert not any(k in rendered for k in ("gcleaner_table7", "gcleaner_fig12", "fe_table1"))
    # per-epoch curves are the logged histories, averaged over seeds
    epochs = pd.read_csv(out / "gcleaner_unlearn_epochs.csv")
    val = epochs[(epochs["panel"] == "AIDS / GTA") & (epochs["line"] == "val_acc")].sort_values("x")
    assert list(val["mean"]) == pytest.approx([81.0 + e for e in range(4)])
    # t-SNE: every embedded point of the first seed's runs, both models
    tsne = pd.read_csv(out / "gcleaner_fig10.csv")
    assert len(tsne) == 2 * 2 * (30 + 20) and set(tsne["seed"]) == {0}
    page = (out / "report.html").read_text()
    assert written["html"] == [out / "report.html"]
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched from the network
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 4
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    assert "no runs of sub-sweep detection" in page and "AIDS / Sub-BA / finetune" in page  # skipped + diffs
    assert "trials finished / failed" in page and "1 / 1" not in page
    assert re.search(r"<td>trials finished / failed</td>\s*<td>\d+ / 1</td>", page)
    assert not list(out.glob(".*"))  # atomic writes leave no temporary files behind


def test_artifact_reader_reads_history_and_missing_artifacts(store: tuple[str, str, Path]) -> None:
    uri, _, _ = store
    runs = load_runs(EXP, uri)
    reader = ArtifactReader(uri)
    finetune = runs[runs["params.defense.name"] == "finetune"].iloc[0]
    assert reader.npz(finetune["run_id"], "embeddings.npz") is None
    assert reader.history(finetune["run_id"], "defense/val_acc").empty


def test_bad_experiment_or_format_is_a_named_error(store: tuple[str, str, Path]) -> None:
    from gnnsec.errors import ConfigError
    from gnnsec.report.build import folder_name

    uri, ref, tmp = store
    with pytest.raises(ConfigError, match=r"--experiment='gnnsec/nope'.*gnnsec/rep"):
        build_report("gnnsec/nope", uri, tmp / "x", ref)
    with pytest.raises(ConfigError, match="--format"):
        build_report(EXP, uri, tmp / "x", ref, formats=("png", "gif"))
    assert not (tmp / "x").exists()  # nothing written before the check
    for name in ("gnnsec/../../etc", "gnnsec/..", "gnnsec/quick-2026/a b"):
        folder = folder_name(name)
        assert "/" not in folder and not folder.startswith(".") and folder not in ("", ".", "..")
    assert folder_name("gnnsec/quick-2026/a b") == "quick-2026_a_b"


def test_report_command(store: tuple[str, str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from gnnsec.cli import main

    uri, ref, tmp = store
    out = tmp / "cli"
    args = ["report", "--experiment", EXP, "--backend-store-uri", uri, "--out", str(out), "--reference", ref]
    assert main([*args, "--format", "png", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["html"] == [str(out / "report.html")]
    assert str(out / "gcleaner_fig6.png") in payload["figures"] and not list(out.glob("*.pdf"))
    assert main([*args[:2], "gnnsec/typo", *args[3:]]) == 2
    assert "invalid --experiment='gnnsec/typo'" in capsys.readouterr().err


def test_a_missing_reference_folder_is_listed_not_silent(store: tuple[str, str, Path]) -> None:
    """Without the paper's CSVs the tables still render, and skipped.csv says the paper column is missing."""
    uri, _, tmp = store
    empty = tmp / "no-reference"
    empty.mkdir(exist_ok=True)
    out = tmp / "out-noref"
    build_report(EXP, uri, out, empty, formats=("png",))
    assert (out / "gcleaner_table3.csv").is_file()
    skipped = pd.read_csv(out / "skipped.csv")
    row = skipped[skipped["item"].str.contains("Table 3") & skipped["item"].str.contains("paper column")]
    assert len(row) == 1
    assert "gcleaner_table3.csv not found" in row["reason"].iloc[0] and str(empty) in row["reason"].iloc[0]
