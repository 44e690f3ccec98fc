"""report.html and the MLflow UI of `gnnsec ui`, rendered by headless Chromium (Debian's `chromium`).

Without a browser binary these tests are skipped with a message, except under CI=true, where a missing
browser is a failure (scripts/test.sh installs it). Screenshots go to $GNNSEC_SCREENSHOT_DIR when set.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import select
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


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    message = "no headless browser: install Debian's `chromium` (apt-get install -y chromium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: browser tests must run)")
    pytest.skip(message)


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON
    messages separated by NUL on fds 3/4), standard library only: navigate, evaluate, wait, screenshot."""

    def __init__(self, tmp: Path, width: int = 1400, height: int = 1000) -> None:
        exe = chromium()
        to_child, self._out = os.pipe()
        self._in, from_child = os.pipe()

        def fds() -> None:  # in the child, before exec: commands on fd 3, responses on fd 4
            os.dup2(to_child, 3)
            os.dup2(from_child, 4)
            os.set_inheritable(3, True)  # dup2 onto the same number keeps close-on-exec
            os.set_inheritable(4, True)

        profile = tmp / f"profile-{time.monotonic_ns()}"
        cmd = [
            exe,
            *FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
            f"--window-size={width},{height}",
        ]
        self.proc = subprocess.Popen(
            cmd, preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        os.close(to_child)
        os.close(from_child)
        self._id, self._buf, self.session = 0, b"", None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method: str, timeout: float = 120, **params: object) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if self.session and method.split(".")[0] not in ("Target", "Browser"):
            msg["sessionId"] = self.session
        os.write(self._out, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    assert "error" not in reply, reply
                    return reply.get("result", {})
            ready, _, _ = select.select([self._in], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"no reply to {method} within {timeout}s"
            chunk = os.read(self._in, 1 << 20)
            assert chunk, "browser exited"
            self._buf += chunk

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> object:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 120) -> object:
        """Poll ``expression`` until it is truthy (the page's scripts keep running in real time)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value or time.monotonic() > deadline:
                return value
            time.sleep(1)

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        with contextlib.suppress(AssertionError, OSError):  # the browser may exit before it replies
            self.call("Browser.close", timeout=10)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._in)
        os.close(self._out)


def _screenshot_dir(tmp: Path) -> Path:
    folder = Path(os.environ.get("GNNSEC_SCREENSHOT_DIR", tmp))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_report_html_renders_tables_and_images(tmp_path: Path) -> None:
    chromium()
    uri, ref, tmp = make_store(tmp_path)
    written = build_report(EXP, uri, tmp / "out", ref)
    browser = Browser(tmp)
    try:
        browser.open(written["html"][0].as_uri())
        browser.wait_for("document.readyState === 'complete'")
        check = browser.evaluate(
            """Promise.all([...document.images].map(i => i.decode().then(() => i.naturalWidth, () => 0)))
               .then(widths => ({widths,
                 caps: [...document.querySelectorAll("caption, figcaption")].map(c => c.textContent),
                 rows: [...document.querySelectorAll("table")].map(t => t.rows.length)}))"""
        )
        shot = _screenshot_dir(tmp) / "report.png"
        browser.screenshot(shot)
    finally:
        browser.close()
    captions = set(check["caps"])
    for stem in ("gcleaner_table3", "gcleaner_table4", "gcleaner_table9"):
        caption = next(line for line in (tmp / "out" / f"{stem}.md").read_text().splitlines() if line)
        assert caption.strip("*") in captions
    assert "Provenance" in captions and "Cells more than 10 points from the paper" in captions
    assert sum(c.startswith("GCleaner Figure") or c.startswith("GCleaner ACC/ASR") for c in captions) == 4
    assert len(check["widths"]) == 4 and all(w > 300 for w in check["widths"])  # every image decoded
    assert all(rows > 1 for rows in check["rows"])  # every table has a header and at least one row
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10000


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # starts an MLflow server (tens of seconds on a loaded machine)
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
        assert url == page + "?workflowType=machine_learning&viewStateShareKey=gnnsec-results"  # saved view
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
        browser = Browser(tmp_path, width=2600)  # wide: the runs grid renders only the visible columns
        try:
            browser.open(url)
            names_js = json.dumps(names)
            listed = browser.wait_for(f"{names_js}.every(n => document.body.innerText.includes(n))", 150)
            text = browser.evaluate("document.body.innerText")
            browser.screenshot(_screenshot_dir(tmp_path) / "mlflow_ui.png")
        finally:
            browser.close()
        assert listed, text[-3000:]
        # the Model-training sidebar (its "Model registry" entry) on the runs page; the Dataset column
        assert "\nRuns\n" in text and "Model registry" in text and "MUTAG" in text
        for column in ("defended_asr", "defended_acc", "backdoor_asr", "gnnsec.subsweep"):
            assert column in text, column
    finally:
        proc.send_signal(signal.SIGTERM)  # gnnsec ui stops the MLflow server's process group
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
