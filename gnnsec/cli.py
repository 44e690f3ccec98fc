"""The ``gnnsec`` command line (also ``python -m gnnsec``).

Every command that prints results takes ``--json`` and then prints exactly one JSON object on stdout;
logs always go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from gnnsec.errors import GnnsecError

log = logging.getLogger("gnnsec")


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    if args.json:
        print(json.dumps(payload, default=float))
    else:
        print(text)


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "" if v is None else str(v)


# ---- trial options shared by train / attack / defend ---------------------------------------------------
def _add_trial_options(p: argparse.ArgumentParser, attack: bool = False, defense: bool = False) -> None:
    p.add_argument("--config", help="YAML/JSON trial config; flags below override it")
    p.add_argument("--dataset")
    p.add_argument("--model")
    p.add_argument("--feature-mode", choices=["degree", "native"])
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int, help="training seed (also the split seed unless --split-seed)")
    p.add_argument("--split-seed", type=int)
    p.add_argument("--holding-rate", type=float)
    p.add_argument("--hidden", type=int)
    p.add_argument("--layers", type=int)
    p.add_argument(
        "--cache-dir", help="artifact cache root (default $GNNSEC_ARTIFACT_DIR or ~/.cache/gnnsec/artifacts)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="any config field, e.g. --set attack.params.density=0.6 (value parsed as YAML)",
    )
    if attack:
        p.add_argument("--attack", default=None)
        p.add_argument("--injection-ratio", type=float)
        p.add_argument("--trigger-size", type=float)
        p.add_argument("--target-label", type=int)
        p.add_argument("--adaptive-alpha", type=float)
    if defense:
        p.add_argument("--defense", default=None)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def build_config(args: argparse.Namespace) -> Any:
    from gnnsec.config import TrialConfig, parse_value

    raw: dict[str, Any] = {}
    if args.config:
        raw = TrialConfig.from_file(args.config).to_dict()
    flat = {
        "data.dataset": args.dataset,
        "model.name": args.model,
        "data.feature_mode": args.feature_mode,
        "train.epochs": args.epochs,
        "train.lr": args.lr,
        "train.batch_size": args.batch_size,
        "train.seed": args.seed,
        "data.split_seed": args.split_seed if args.split_seed is not None else args.seed,
        "data.holding_rate": args.holding_rate,
        "model.hidden": args.hidden,
        "model.num_layers": args.layers,
    }
    if hasattr(args, "attack"):
        flat.update(
            {
                "attack.name": args.attack,
                "attack.injection_ratio": args.injection_ratio,
                "attack.trigger_size": args.trigger_size,
                "attack.target_label": args.target_label,
                "attack.adaptive_alpha": args.adaptive_alpha,
                "attack.seed": args.seed,
            }
        )
    if hasattr(args, "defense"):
        flat.update({"defense.name": args.defense, "defense.seed": args.seed})
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            from gnnsec.errors import ConfigError

            raise ConfigError("--set", item, "SECTION.FIELD=VALUE")
        flat[key] = parse_value(value)
    for dotted, value in flat.items():
        if value is None:
            continue
        section, _, rest = dotted.partition(".")
        if section in ("attack", "defense") and raw.get(section) is None:
            if dotted not in ("attack.name", "defense.name") and not (
                hasattr(args, section) and getattr(args, section)
            ):
                continue  # e.g. --seed without --attack
            raw[section] = {}
        node = raw.setdefault(section, {})
        *parents, leaf = rest.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return TrialConfig.from_dict(raw)


def _cache(args: argparse.Namespace) -> Any:
    from gnnsec.cache import ArtifactCache

    return ArtifactCache(args.cache_dir) if getattr(args, "cache_dir", None) else ArtifactCache()


# ---- commands ------------------------------------------------------------------------------------------
def cmd_data_stats(args: argparse.Namespace) -> int:
    from gnnsec.data.stats import dataset_stats

    rows = [dataset_stats(name) for name in args.names]
    cols = ["dataset", "graphs", "avg_nodes", "avg_edges", "classes", "graphs_per_class"]
    _emit(args, {"datasets": rows}, _table(rows, cols))
    return 0


def cmd_data_list(args: argparse.Namespace) -> int:
    from gnnsec.data.registry import DATASETS

    rows = [
        {"dataset": n, "task": DATASETS.get(n).task, "notes": DATASETS.get(n).notes} for n in DATASETS.names()
    ]
    _emit(args, {"datasets": rows}, _table(rows, ["dataset", "task", "notes"]))
    return 0


def _run(args: argparse.Namespace) -> dict[str, Any]:
    from gnnsec.pipeline import run_trial

    cfg = build_config(args)
    t0 = time.perf_counter()
    result = run_trial(cfg, _cache(args))
    out = {"config": cfg.to_dict(), "metrics": result.metrics, "seconds": time.perf_counter() - t0}
    return out


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{100 * float(v):6.2f}%"


def cmd_train(args: argparse.Namespace) -> int:
    out = _run(args)
    m = out["metrics"]
    text = (
        f"{out['config']['data']['dataset']} / {out['config']['model']['name']}: clean test accuracy "
        f"{_pct(m['clean_acc'])} on {int(m['clean_n'])} graphs ({m['clean_train_seconds']:.1f}s training)"
    )
    _emit(args, out, text)
    return 0


def _rate_rows(m: dict[str, Any], models: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for name in models:
        rows.append(
            {
                "model": name,
                "ACC": _pct(m.get(f"{name}_acc")),
                "ASR": _pct(m.get(f"{name}_asr")),
                "ASR(clean-correct)": _pct(m.get(f"{name}_asr_cc")),
                "graphs(ACC/ASR/ASRcc)": f"{int(m.get(f'{name}_n', 0))}/{int(m.get(f'{name}_asr_n', 0))}/"
                f"{int(m.get(f'{name}_asr_cc_n', 0))}",
            }
        )
    return rows


def cmd_attack(args: argparse.Namespace) -> int:
    if not args.attack:
        args.attack = "sub_ba"
    out = _run(args)
    rows = _rate_rows(out["metrics"], ["clean", "backdoor"])
    _emit(args, out, _table(rows, list(rows[0])))
    return 0


def cmd_defend(args: argparse.Namespace) -> int:
    args.attack = args.attack or "sub_ba"
    args.defense = args.defense or "gcleaner"
    out = _run(args)
    rows = _rate_rows(out["metrics"], ["clean", "backdoor", "defended"])
    _emit(args, out, _table(rows, list(rows[0])))
    return 0


def build_unlearn_config(args: argparse.Namespace) -> Any:
    """The paper's node setting (gnnsec.node_trial.PAPER_SETTINGS), then the flags, then ``--set``."""
    import yaml

    from gnnsec.config import TrialConfig
    from gnnsec.errors import ConfigError
    from gnnsec.node_trial import PAPER_SETTINGS

    flat: dict[str, Any] = dict(PAPER_SETTINGS)
    flags = {
        "data.dataset": args.dataset,
        "model.name": args.model,
        "unlearning.name": args.unlearner,
        "unlearning.forget_ratio": args.forget_ratio,
        "train.seed": args.seed,
        "data.split_seed": args.seed,
        "train.epochs": args.epochs,
    }
    flat.update({k: v for k, v in flags.items() if v is not None})
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError("--set", item, "SECTION.FIELD=VALUE")
        flat[key] = yaml.safe_load(value)
    raw: dict[str, Any] = {"unlearning": {}}
    for dotted, value in flat.items():  # nested, so that e.g. unlearning.params.epochs=5 works
        *parents, leaf = dotted.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return TrialConfig.from_dict(raw)


def cmd_unlearn(args: argparse.Namespace) -> int:
    from gnnsec.pipeline import run_trial

    cfg = build_unlearn_config(args)
    t0 = time.perf_counter()
    m = run_trial(cfg, _cache(args)).metrics
    out = {"config": cfg.to_dict(), "metrics": m, "seconds": time.perf_counter() - t0}
    u = cfg.unlearning
    lines = [
        f"{cfg.data.dataset} / {cfg.model.name} / {u.name}: forgot {int(m['n_forget'])} nodes "
        f"({u.forget_ratio:.0%}, {int(m['n_forget_train'])} of them training nodes)",
        f"test accuracy on {int(m['n_eval'])} nodes: before {_pct(m['base_acc'])}, "
        f"after {_pct(m['unlearned_acc'])}",
        f"unlearning time {m['unlearn_seconds']:.2f}s (base training {m['base_train_seconds']:.2f}s)",
    ]
    keys = ["ra_pre", "ra_post", "hs", "esd", "ged", "grs", "mi_auc_pre", "mi_auc_post"]
    rows = [{k: m.get(f"verify_{k}") for k in keys}]
    _emit(args, out, "\n".join(lines) + "\n" + _table(rows, keys))
    return 0


def cmd_cache_ls(args: argparse.Namespace) -> int:
    entries = _cache(args).entries()
    rows = [
        {
            "kind": e.kind,
            "key": e.key,
            "MiB": round(e.size_bytes / 2**20, 2),
            "dataset": e.spec.get("dataset"),
            "model": e.spec.get("model", {}).get("name"),
            "attack": (e.spec.get("attack") or {}).get("name"),
            "path": str(e.path),
        }
        for e in entries
    ]
    text = _table(rows, ["kind", "key", "MiB", "dataset", "model", "attack"]) if rows else "cache is empty"
    _emit(args, {"root": str(_cache(args).root), "entries": rows}, text)
    return 0


def cmd_cache_clear(args: argparse.Namespace) -> int:
    n = _cache(args).clear(args.kind)
    _emit(args, {"removed": n}, f"removed {n} cached artifacts")
    return 0


def cmd_cache_verify(args: argparse.Namespace) -> int:
    """Check every entry's sizes and sha256; with --repair quarantine the bad ones. Exit 1 when any is bad."""
    cache = _cache(args)
    bad = cache.verify(repair=args.repair)
    rows = [{"kind": p.parent.name, "key": p.name, "problem": why} for p, why in bad]
    n = len(cache.entries())
    text = _table(rows, ["kind", "key", "problem"]) if rows else f"all {n} cached artifacts verified"
    if rows and args.repair:
        text += f"\nquarantined {len(rows)} entries under {cache.root / '.quarantine'}; the next trial rebuilds them"
    _emit(args, {"root": str(cache.root), "bad": rows, "repaired": bool(args.repair)}, text)
    return 1 if rows else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gnnsec", description="GNN-security experiments: datasets, attacks, defenses, sweeps, reports."
    )
    parser.add_argument("-v", "--verbose", action="count", default=0)
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="datasets").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("stats", help="GCleaner Table 2 statistics of datasets")
    p.add_argument("names", nargs="+")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_data_stats)
    p = data.add_parser("list", help="registered datasets")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_data_list)

    p = sub.add_parser("train", help="train a clean model and print its test accuracy")
    _add_trial_options(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("attack", help="backdoor a model; print clean and backdoored ACC/ASR")
    _add_trial_options(p, attack=True)
    p.set_defaults(func=cmd_attack)
    p = sub.add_parser("defend", help="attack (cached) then defend; print the before/after table")
    _add_trial_options(p, attack=True, defense=True)
    p.set_defaults(func=cmd_defend)

    p = sub.add_parser("unlearn", help="node unlearning + explainability verification (Forget and Explain)")
    p.add_argument("--dataset", default="Cora")
    p.add_argument("--model", default="GCN")
    p.add_argument("--unlearner", default="retrain", help="retrain, gnndelete, grapheditor, idea")
    p.add_argument("--forget-ratio", type=float, help="share of nodes to forget (default 0.05)")
    p.add_argument("--seed", type=int, help="training, split and forget-set seed (default 0)")
    p.add_argument("--epochs", type=int, help="base-model epochs (default 100)")
    p.add_argument("--cache-dir", help="artifact cache root")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_unlearn)

    cache = sub.add_parser("cache", help="the artifact cache").add_subparsers(
        dest="cache_command", required=True
    )
    p = cache.add_parser("ls", help="list cached artifacts")
    p.add_argument("--cache-dir")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cache_ls)
    p = cache.add_parser("clear", help="delete cached artifacts")
    p.add_argument("--cache-dir")
    p.add_argument("--kind", choices=["clean", "backdoor"], default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cache_clear)
    p = cache.add_parser("verify", help="check every cached artifact's sizes and sha256")
    p.add_argument("--cache-dir")
    p.add_argument("--repair", action="store_true", help="quarantine bad entries so the next trial rebuilds")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cache_verify)

    _add_results_commands(sub)
    return parser


# ---- results: gnnsec sweep | report | ui ---------------------------------------------------------------
def _add_results_commands(sub: Any) -> None:
    """``gnnsec sweep`` (sweeps/full.py), ``gnnsec report`` (gnnsec.report), ``gnnsec ui`` (MLflow UI)."""
    # prefix_chars="+": every flag after `gnnsec sweep` is handed to sweeps/full.py untouched
    p = sub.add_parser(
        "sweep", help="run a sweep: sweeps/full.py with the same flags", add_help=False, prefix_chars="+"
    )
    p.add_argument("sweep_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("report", help="every paper table/figure + report.html from a sweep's MLflow runs")
    p.add_argument("--experiment", default=None, help="MLflow experiment (default: the latest gnnsec one)")
    p.add_argument("--backend-store-uri", default=None, help="default $MLFLOW_TRACKING_URI or the run dir")
    p.add_argument("--run-dir", default=None, help="run folder (default $GNNSEC_RUN_DIR or ./runs)")
    p.add_argument("--out", default=None, help="output folder (default <run dir>/report/<sweep>)")
    p.add_argument("--format", default="png,pdf", help="figure formats, comma-separated (png,pdf)")
    p.add_argument("--reference", default=None, help="folder with the paper's tables (gcleaner_table3.csv)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("ui", help="MLflow UI on the local sweep store (127.0.0.1 by default)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--port", type=int, default=5000, help="0 picks a free port")
    p.add_argument("--run-dir", default=None, help="run folder (default $GNNSEC_RUN_DIR or ./runs)")
    p.add_argument("--backend-store-uri", default=None, help="default $MLFLOW_TRACKING_URI or the run dir")
    p.add_argument("--experiment", default=None, help="experiment whose runs page to print (default latest)")
    p.set_defaults(func=cmd_ui)


def cmd_sweep(args: argparse.Namespace) -> int:
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "sweeps" / "full.py"
    if not script.is_file():
        print(f"gnnsec: error: {script} not found (sweeps/ ships with the source checkout)", file=sys.stderr)
        return 2
    extra = list(args.sweep_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    return subprocess.call([sys.executable, str(script), *extra])


def cmd_report(args: argparse.Namespace) -> int:
    from gnnsec.report import build_report
    from gnnsec.tracking import tracking_uri

    formats = tuple(f.strip().lower() for f in args.format.split(",") if f.strip())
    out = build_report(
        experiment=args.experiment,
        uri=args.backend_store_uri or tracking_uri(args.run_dir),
        out_dir=args.out,
        reference_dir=args.reference,
        formats=formats,
        run_dir=args.run_dir,
    )
    payload = {kind: [str(p) for p in paths] for kind, paths in out.items()}
    lines = [f"{kind}: {p}" for kind, paths in payload.items() if kind != "html" for p in paths]
    lines += [f"report: {p}" for p in payload.get("html", [])]  # last line: the file to open
    _emit(args, payload, "\n".join(lines) or "no finished runs: nothing to report")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """Serve the MLflow UI in its own process group; print the runs page of the experiment to open."""
    import contextlib
    import os
    import signal
    import socket
    import subprocess

    from gnnsec.tracking import artifact_location, tracking_uri

    uri = args.backend_store_uri or tracking_uri(args.run_dir)
    port = args.port
    if port == 0:
        with socket.socket() as sock:
            sock.bind((args.host, 0))
            port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    cmd += ["--host", args.host, "--port", str(port)]
    location = artifact_location(uri, args.run_dir)
    if location:
        cmd += ["--default-artifact-root", location]
    print(f"MLflow UI on {_ui_url(uri, args.host, port, args.experiment)} (store {uri}); Ctrl-C to stop")
    sys.stdout.flush()
    proc = subprocess.Popen(cmd, start_new_session=True)  # its workers stop with its process group

    def _interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        with contextlib.suppress(ProcessLookupError):  # the group may outlive its leader
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _ui_url(uri: str, host: str, port: int, experiment: str | None) -> str:
    """The runs page of ``experiment`` (default: the latest gnnsec one) in the saved ACC/ASR view."""
    base = f"http://{host}:{port}"
    try:
        from gnnsec.report.runs import experiment_id

        exp_id = experiment_id(uri, experiment)
    except Exception:  # the store may not exist yet; the UI still starts
        log.debug("no experiment to link", exc_info=True)
        return base
    from gnnsec.tracking import RESULTS_VIEW

    query = (
        f"workflowType=machine_learning&viewStateShareKey={RESULTS_VIEW}"  # the training sidebar, our view
    )
    return f"{base}/#/experiments/{exp_id}/runs?{query}" if exp_id else base


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose + 1, 2),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except GnnsecError as exc:
        print(f"gnnsec: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
