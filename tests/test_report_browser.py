"""report.html and the MLflow UI of `gnnsec ui`, rendered by headless Chromium (Debian's `chromium`).

Without a browser binary these tests are skipped with a message, except under CI=true, where a missing
browser is a failure (scripts/test.sh installs it). Screenshots go to $GNNSEC_SCREENSHOT_DIR when set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from gnnsec.report import build_report
from gnnsec.tracking import SUBSWEEP_TAG, TrackerSettings, TrialTracker
from tests.test_report import EXP, make_store

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
# appended to a copy of report.html only: the shipped report has no script
CHECK_SCRIPT = """<script>
window.addEventListener("load", () => {
  const imgs = [...document.images].map(i => ({ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth}));
  const caps = [...document.querySelectorAll("caption, figcaption")].map(c => c.textContent);
  const tables = [...document.querySelectorAll("table")].map(t => t.rows.length);
  const out = document.createElement("pre");
  out.id = "gnnsec-check";
  out.textContent = JSON.stringify({imgs, caps, tables});
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    message = "no headless browser: install Debian's `chromium` (apt-get install -y chromium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: browser tests must run)")
    pytest.skip(message)


def run_browser(
    url: str, tmp: Path, budget_ms: int, screenshot: Path | None = None, width: int = 1400
) -> str:
    """The DOM after ``budget_ms`` of virtual time (and a screenshot when asked)."""
    exe = chromium()
    profile = tmp / f"profile-{time.monotonic_ns()}"
    base = [exe, *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}"]
    base.append(f"--window-size={width},1000")
    if screenshot is not None:
        subprocess.run(
            [*base, f"--screenshot={screenshot}", url], capture_output=True, timeout=240, check=False
        )
    out = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=240, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _screenshot_dir(tmp: Path) -> Path:
    folder = Path(os.environ.get("GNNSEC_SCREENSHOT_DIR", tmp))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_report_html_renders_tables_and_images(tmp_path: Path) -> None:
    chromium()
    uri, ref, tmp = make_store(tmp_path)
    written = build_report(EXP, uri, tmp / "out", ref)
    page = written["html"][0].read_text()
    probe = tmp / "probe.html"
    probe.write_text(page.replace("</body>", CHECK_SCRIPT + "</body>"))
    shot = _screenshot_dir(tmp) / "report.png"
    dom = run_browser(probe.as_uri(), tmp, 3000, shot)
    found = re.search(r'<pre id="gnnsec-check">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    check = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    captions = set(check["caps"])
    for stem in ("gcleaner_table3", "gcleaner_table4", "gcleaner_table9"):
        caption = next(line for line in (tmp / "out" / f"{stem}.md").read_text().splitlines() if line)
        assert caption.strip("*") in captions
    assert "Provenance" in captions and "Cells more than 10 points from the paper" in captions
    assert sum(c.startswith("GCleaner Figure") or c.startswith("GCleaner ACC/ASR") for c in captions) == 4
    assert len(check["imgs"]) == 4 and all(i["ok"] and i["w"] > 300 for i in check["imgs"])
    assert all(rows > 1 for rows in check["tables"])  # every table has a header and at least one row
    assert shot.is_file() and shot.stat().st_size > 10000


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_ui_opens_on_the_runs(tmp_path: Path) -> None:
    chromium()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = TrialTracker(TrackerSettings(uri, "gnnsec/ui-check", (tmp_path / "mlartifacts").as_uri()))
    names = [f"main/MUTAG/GIN/sub_ba/{d}/s0" for d in ("gcleaner", "finetune")]
    for i, name in enumerate(names):
        cfg = {
            "data": {"dataset": "MUTAG"},
            "attack": {"name": "sub_ba"},
            "defense": {"name": name.split("/")[4]},
        }
        tracker.start(f"t{i}", name, cfg, {SUBSWEEP_TAG: "main"})
        tracker.log_metrics(f"t{i}", {"backdoor_asr": 0.9, "defended_asr": 0.1 * i, "defended_acc": 0.8})
        tracker.finish(f"t{i}")
    exp = tracker.client.get_experiment(tracker.experiment_id)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    run = tracker.client.search_runs([tracker.experiment_id])[0]
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["MUTAG"]

    port = _free_port()
    cmd = [sys.executable, "-m", "gnnsec.cli", "ui", "--port", str(port), "--backend-store-uri", uri]
    cmd += ["--run-dir", str(tmp_path), "--experiment", "gnnsec/ui-check"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://\S+", line).group(0)
        page = f"http://127.0.0.1:{port}/#/experiments/{tracker.experiment_id}/runs"
        assert url == page + "?viewStateShareKey=gnnsec-results"  # the saved ACC/ASR columns view
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-2000:]
            time.sleep(1)
        shot = _screenshot_dir(tmp_path) / "mlflow_ui.png"
        dom = run_browser(
            url, tmp_path, 20000, shot, width=2600
        )  # wide: the grid renders visible columns only
        for name in names:
            assert name in dom, dom[-3000:]
        assert "MUTAG" in dom  # the Dataset column
        for column in ("defended_asr", "defended_acc", "backdoor_asr", "gnnsec.subsweep"):
            assert column in dom, column
    finally:
        proc.send_signal(signal.SIGTERM)  # gnnsec ui stops the MLflow server's process group
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
