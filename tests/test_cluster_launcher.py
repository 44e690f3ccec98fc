"""The headline command for real: `ray up` + `ray submit ... sweeps/full.py` on a loopback cluster.

A copy of ``cluster/local.yaml`` is generated from the real file (:func:`loopback_variant`): head
127.0.0.1 reached over SSH through an sshd bound to 127.0.0.1 (free port, throw-away key), no workers, a
throw-away SSH user with its own home (so nothing of root's home, Ray, or token is touched), a temp folder
instead of the NFS mount, the project's own venv instead of a second install, free ports instead of Ray's
and MLflow's defaults, and no ``ray stop`` (other Ray instances may run on this machine); everything else
is the real config. Then ``ray up``, ``ray submit ... sweeps/full.py --preset smoke``, and the checks:
every planned trial is exactly one FINISHED run in the head's MLflow server, stored in PostgreSQL; the
database password is in no process's command line and its file is mode 600; Ray refuses a wrong token; a
second ``ray up`` re-runs the setup without error; the MLflow server restarts by its recorded pid.
Everything started here is stopped by its own pid (the throw-away user's processes, sshd, and PostgreSQL
if it was not running before).

Needs root and Debian packages (openssh-server, rsync, sudo, postgresql: ``scripts/test.sh`` installs
them). Under ``CI=true`` a missing piece is a failure, elsewhere a skip that says what is missing.
"""

from __future__ import annotations

import contextlib
import copy
import getpass
import hashlib
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LOCAL_YAML = ROOT / "cluster" / "local.yaml"
IN_CI = os.environ.get("CI", "").lower() == "true"
VENV_BIN = Path(sys.executable).parent
TOKEN_MOUNT = "~/.ray/auth_token"

RELAY = """\
import os, socket, sys, threading
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
def pump():
    try:
        while data := os.read(0, 65536):
            s.sendall(data)
    finally:
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
threading.Thread(target=pump, daemon=True).start()
while data := s.recv(65536):
    view = memoryview(data)
    while view:
        view = view[os.write(1, view):]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback_variant(
    real: dict,
    *,
    name: str,
    user: str,
    key: Path,
    proxy_command: str,
    token: Path,
    venv: Path,
    shared: Path,
    tmp: Path,
    ports: dict[str, int],
) -> dict:
    """The real on-premise config pointed at this machine; only what a loopback run needs is changed."""
    cfg = copy.deepcopy(real)
    cfg["cluster_name"] = name
    cfg["provider"] = {"type": "local", "head_ip": "127.0.0.1", "worker_ips": []}
    cfg["max_workers"] = 0
    cfg["auth"] = {"ssh_user": user, "ssh_private_key": str(key), "ssh_proxy_command": proxy_command}
    cfg["file_mounts"] = {
        remote: (str(token) if remote == TOKEN_MOUNT else local)
        for remote, local in real["file_mounts"].items()
    }
    head_flags = (
        f" --node-ip-address=127.0.0.1 --dashboard-port={ports['dashboard']}"
        f" --dashboard-agent-listen-port={ports['agent']}"
    )

    def edit(commands: list[str]) -> list[str]:
        out = []
        for cmd in commands:
            if cmd.strip() == "ray stop" or "pip install" in cmd:
                continue  # never stop others' Ray; the project's venv is already installed
            if "python3 -m venv ~/venv" in cmd:
                cmd = f"ln -sfn {venv} ~/venv"
            elif "mount -t" in cmd:
                cmd = f"mkdir -p {shared}"  # a temp folder instead of the NFS mount
            cmd = (
                cmd.replace("/mnt/shared", str(shared))
                .replace("127.0.0.1:5000", f"127.0.0.1:{ports['mlflow']}")
                .replace("--port=6379", f"--port={ports['gcs']}")
                .replace("$RAY_HEAD_IP:6379", f"$RAY_HEAD_IP:{ports['gcs']}")
            )
            if "ray start --head" in cmd:
                cmd += head_flags
            out.append(cmd)
        return out

    for key_ in (
        "setup_commands",
        "head_setup_commands",
        "head_start_ray_commands",
        "worker_start_ray_commands",
    ):
        cfg[key_] = edit(real.get(key_, []))
    # `pip install -e ~/gnnsec` without touching the shared venv: the synced checkout goes first on the path
    cfg["setup_commands"].append(
        "printf '%s\\n' 'export PYTHONPATH=$HOME/gnnsec' "
        f"'export TMPDIR={tmp}' 'export RAY_TMPDIR={tmp}' 'export RAY_USAGE_STATS_ENABLED=0'"
        " 'export GNNSEC_MLFLOW_WORKERS=1' >> ~/.gnnsec_env"
    )
    return cfg


def test_loopback_variant_changes_only_what_loopback_needs() -> None:
    real = yaml.safe_load(LOCAL_YAML.read_text())
    ports = {k: 10000 + i for i, k in enumerate(("gcs", "mlflow", "dashboard", "agent"))}
    cfg = loopback_variant(
        real,
        name="lt",
        user="u",
        key=Path("/k"),
        proxy_command="relay",
        token=Path("/tok"),
        venv=Path("/venv"),
        shared=Path("/t/shared"),
        tmp=Path("/t/tmp"),
        ports=ports,
    )
    text = yaml.safe_dump(cfg)
    assert "ray stop" not in text and "pkill" not in text and "killall" not in text
    assert "/mnt/shared" not in text and ":5000" not in text and "6379" not in text
    assert cfg["file_mounts"] == {"~/gnnsec": ".", TOKEN_MOUNT: "/tok"}
    # what the test exercises is the real setup: PostgreSQL, the MLflow server, token auth, the env file
    for field in ("head_setup_commands", "head_start_ray_commands"):
        assert [c for c in cfg[field] if "head.sh" in c] == [
            c.replace("/mnt/shared", "/t/shared").replace(":5000", ":10001")
            for c in real[field]
            if "head.sh" in c
        ]
    assert any(
        "RAY_AUTH_MODE=token ray start --head --port=10000" in c for c in cfg["head_start_ray_commands"]
    )
    assert any("'export RAY_AUTH_MODE=token'" in c for c in cfg["setup_commands"])
    assert any(c == "chmod 600 ~/.ray/auth_token" for c in cfg["setup_commands"])


# ---- the real run ----------------------------------------------------------------------------------------


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"loopback cluster test cannot run under CI=true: {reason} (scripts/test.sh installs it)")
    pytest.skip(f"loopback cluster test needs {reason}")


def _require_tools() -> None:
    if os.geteuid() != 0:
        _unavailable("root (it creates a throw-away SSH user and starts sshd/PostgreSQL)")
    missing = [
        tool
        for tool, path in (
            ("openssh-server", "/usr/sbin/sshd"),
            ("openssh-client", shutil.which("ssh-keygen")),
            ("rsync", shutil.which("rsync")),
            ("sudo", shutil.which("sudo")),
            ("postgresql", shutil.which("pg_isready")),
            ("useradd", shutil.which("useradd")),
        )
        if not path or not Path(path).exists()
    ]
    if missing:
        _unavailable(f"Debian packages {', '.join(missing)} (apt-get install -y {' '.join(missing)})")
    if not (VENV_BIN / "ray").exists():
        _unavailable(f"the `ray` CLI next to {sys.executable}")


def _run(cmd: list[str], log: Path, timeout: float, **kw) -> tuple[int, float]:
    start = time.monotonic()
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, **kw)
    return proc.returncode, time.monotonic() - start


def _tail(path: Path, n: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else ""


def _pids_of(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except FileNotFoundError:
                pass
    return pids


def _stop(pids: list[int], sig: int = signal.SIGTERM, wait: float = 15.0) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    deadline = time.monotonic() + wait
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.3)
        alive = [p for p in alive if Path(f"/proc/{p}").exists() and _state(p) != "Z"]
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "X"


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:  # gone, or not ours to read
        return b""


def _psql(sql: str, db: str = "postgres") -> str:
    out = subprocess.run(
        ["runuser", "-u", "postgres", "--", "psql", "-d", db, "-tAc", sql],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


def _postmaster_pid() -> int | None:
    if subprocess.run(["pg_isready", "-q"], timeout=30).returncode != 0:
        return None
    data_dir = Path(_psql("SHOW data_directory"))
    return int((data_dir / "postmaster.pid").read_text().split()[0])


def _traversable(path: Path, restore: list[tuple[Path, int]]) -> None:
    """Let the throw-away user reach ``path`` (o+x on ancestors lacking it; restored at the end)."""
    for parent in reversed(path.resolve().parents):
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            restore.append((parent, stat.S_IMODE(mode)))
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


@pytest.fixture()
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gnnsec-lt-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    if not os.environ.get("GNNSEC_KEEP_LOOPBACK"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_ray_up_and_submit_on_a_loopback_cluster(workdir: Path, mirror: Path) -> None:
    _require_tools()
    from sweeps.driver import build_parser, make_plan

    expected = sorted(p.name for p in make_plan(build_parser().parse_args(["--preset", "smoke"])).trials)
    tag = secrets.token_hex(3)
    user, name, sweep = f"gnnlt{tag}", f"gnnsec-lt-{tag}", f"lt-smoke-{tag}"
    home, shared, log = workdir / "home", workdir / "shared", workdir / "launcher.log"
    sudoers = Path(f"/etc/sudoers.d/gnnsec-lt-{tag}")
    ports = {k: free_port() for k in ("ssh", "gcs", "mlflow", "dashboard", "agent")}
    restore_modes: list[tuple[Path, int]] = []
    sshd: subprocess.Popen | None = None
    uid: int | None = None
    pg_before = _postmaster_pid()
    timings: dict[str, float] = {}
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "RAY_TMPDIR": str(workdir / "launcher"),  # the local provider's state file
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("RAY_ADDRESS", None)
    try:
        # -- a throw-away SSH user with passwordless sudo (as the real config expects), its key, an sshd
        subprocess.run(
            [
                "useradd",
                "--create-home",
                "--home-dir",
                str(home),
                "--shell",
                "/bin/bash",
                "--user-group",
                user,
            ],
            check=True,
            capture_output=True,
        )
        uid = int(subprocess.run(["id", "-u", user], check=True, capture_output=True, text=True).stdout)
        subprocess.run(["usermod", "-p", "*", user], check=True)  # no password, but not a locked account
        sudoers.write_text(f"{user} ALL=(ALL) NOPASSWD:ALL\n")
        sudoers.chmod(0o440)
        key = workdir / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        (home / ".ssh").mkdir(mode=0o700)
        shutil.copy(key.with_suffix(".pub"), home / ".ssh" / "authorized_keys")
        subprocess.run(["chown", "-R", f"{user}:{user}", str(home / ".ssh")], check=True)
        (home / ".ssh" / "authorized_keys").chmod(0o600)
        sshd_dir = workdir / "sshd"
        sshd_dir.mkdir()
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(sshd_dir / "host_key")], check=True
        )
        (sshd_dir / "sshd_config").write_text(
            f"Port {ports['ssh']}\nListenAddress 127.0.0.1\nHostKey {sshd_dir / 'host_key'}\n"
            f"PidFile {sshd_dir / 'sshd.pid'}\nAllowUsers {user}\nPermitRootLogin no\n"
            "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nStrictModes yes\nX11Forwarding no\nSubsystem sftp internal-sftp\n"
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        sshd = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(sshd_dir / "sshd_config")],
            stdout=(workdir / "sshd.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        (workdir / "relay.py").write_text(RELAY)

        # -- the data mirror and the project's venv, reachable by the throw-away user; its own folders
        for folder in (shared, workdir / "tmp"):
            folder.mkdir()
            shutil.chown(folder, user, user)
        (shared / "data").symlink_to(mirror.resolve())
        interpreter = Path(os.path.realpath(sys.executable))  # the venv's base Python may live in /root
        for path in (mirror.resolve(), Path(sys.prefix), interpreter, Path(sys.base_prefix) / "lib"):
            _traversable(path, restore_modes)
        token = workdir / "auth_token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        cfg = loopback_variant(
            yaml.safe_load(LOCAL_YAML.read_text()),
            name=name,
            user=user,
            key=key,
            proxy_command=f"{sys.executable} {workdir / 'relay.py'} 127.0.0.1 {ports['ssh']}",
            token=token,
            venv=Path(sys.prefix),
            shared=shared,
            tmp=workdir / "tmp",
            ports=ports,
        )
        variant = workdir / "loopback.yaml"
        variant.write_text(yaml.safe_dump(cfg, sort_keys=False))
        ray = str(VENV_BIN / "ray")

        # -- ray up
        rc, timings["ray up"] = _run(
            [ray, "up", "-y", "--no-config-cache", str(variant)], log, 900, cwd=ROOT, env=env
        )
        assert rc == 0, f"ray up failed:\n{_tail(log)}"
        print(f"launcher: ray up: head ready in {timings['ray up']:.0f} s")

        # -- ray submit, exactly as the README says (the script is copied alone to ~/full.py on the head)
        rc, timings["ray submit"] = _run(
            [
                ray,
                "submit",
                "--no-config-cache",
                str(variant),
                "sweeps/full.py",
                "--preset",
                "smoke",
                "--name",
                sweep,
            ],
            log,
            1200,
            cwd=ROOT,
            env=env,
        )
        assert rc == 0, f"ray submit failed:\n{_tail(log)}"

        # -- every planned trial is one FINISHED run in the head's MLflow server, stored in PostgreSQL
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=f"http://127.0.0.1:{ports['mlflow']}")
        experiment = client.get_experiment_by_name(f"gnnsec/{sweep}")
        assert experiment is not None, f"no MLflow experiment gnnsec/{sweep}:\n{_tail(log)}"
        runs = client.search_runs([experiment.experiment_id], max_results=1000)
        assert sorted(r.data.tags.get("mlflow.runName", "") for r in runs) == expected, (
            "each trial exactly once"
        )
        assert {r.info.status for r in runs} == {"FINISHED"}
        assert all("defended_acc" in r.data.metrics for r in runs)
        stored = _psql(
            "SELECT count(*) FROM runs r JOIN experiments e ON r.experiment_id = e.experiment_id "
            f"WHERE e.name = 'gnnsec/{sweep}' AND r.status = 'FINISHED'",
            db="mlflow",
        )
        assert int(stored) == len(expected)
        print(
            f"launcher: ray submit: {len(runs)}/{len(expected)} trials FINISHED in {timings['ray submit']:.0f} s "
            f"(preset smoke, MUTAG, seed 0)"
        )
        print(
            f"launcher: MLflow check: {stored} FINISHED runs of gnnsec/{sweep} in PostgreSQL table `runs` "
            f"(server http://127.0.0.1:{ports['mlflow']}), each planned trial exactly once"
        )

        # -- secrets: the DB password only in ~/.pgpass (600), on no command line; Ray's token file 600
        pgpass = home / ".pgpass"
        assert stat.S_IMODE(pgpass.stat().st_mode) == 0o600
        assert stat.S_IMODE((home / ".ray" / "auth_token").stat().st_mode) == 0o600
        password = next(
            line.split(":")[4] for line in pgpass.read_text().splitlines() if ":mlflow:mlflow:" in line
        )
        leaked = [
            p.name for p in Path("/proc").iterdir() if p.name.isdigit() and password.encode() in _cmdline(p)
        ]
        assert not leaked, f"the database password is on the command line of pids {leaked}"

        # -- Ray refuses a client without the cluster's token, and serves one with it
        def ray_status(token_value: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [ray, "status", "--address", f"127.0.0.1:{ports['gcs']}"],
                env={**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token_value},
                capture_output=True,
                text=True,
                timeout=180,
                cwd="/",
            )

        wrong, right = ray_status("not-the-token"), ray_status(token.read_text())
        assert wrong.returncode != 0 and "InvalidAuthToken" in wrong.stdout + wrong.stderr, wrong.stderr[
            -500:
        ]
        assert right.returncode == 0 and "Node status" in right.stdout, right.stderr[-500:]
        print(
            "launcher: Ray token auth: `ray status` refused with a wrong token (InvalidAuthToken), served with it"
        )

        # -- a second `ray up` (the checkout changed) re-runs the setup: PostgreSQL, role, database, env
        stamp = workdir / "stamp"
        stamp.write_text(tag)
        cfg["file_mounts"]["~/.gnnsec-stamp"] = str(stamp)
        variant.write_text(yaml.safe_dump(cfg, sort_keys=False))
        again = workdir / "launcher-again.log"
        rc, timings["ray up again"] = _run(
            [ray, "up", "-y", "--no-config-cache", "--no-restart", str(variant)],
            again,
            600,
            cwd=ROOT,
            env=env,
        )
        assert rc == 0, f"second ray up failed:\n{_tail(again)}"
        assert "head.sh db" in again.read_text(), "the second ray up did not re-run the head setup"
        print(f"launcher: second ray up (setup again, no restart): {timings['ray up again']:.0f} s")

        # -- the MLflow server restarts by its recorded pid; the runs are still there
        pidfile = home / ".gnnsec" / "mlflow-server.pid"
        old = int(pidfile.read_text())
        restart = f"bash ~/gnnsec/cluster/head.sh mlflow 127.0.0.1:{ports['mlflow']} {shared}/mlartifacts"
        rc, took = _run(
            [ray, "exec", "--no-config-cache", str(variant), restart], log, 300, cwd=ROOT, env=env
        )
        assert rc == 0, f"MLflow restart failed:\n{_tail(log)}"
        new = int(pidfile.read_text())
        assert new != old and not (Path(f"/proc/{old}").exists() and _state(old) != "Z")
        print(f"launcher: MLflow server restarted by pid ({old} stopped, {new} serving) in {took:.0f} s")
        assert len(client.search_runs([experiment.experiment_id], max_results=1000)) == len(expected)
    finally:
        if uid is not None:  # everything the throw-away user runs: Ray, MLflow, its SSH sessions
            _stop(_pids_of(uid))
        if sshd is not None:
            sshd.terminate()
            sshd.wait(timeout=30)
        pg_now = _postmaster_pid() if shutil.which("pg_isready") else None
        if pg_before is None and pg_now is not None:  # started by the config for this test: stop it
            _stop([pg_now], signal.SIGINT, wait=60)
        if uid is not None:
            subprocess.run(["userdel", user], capture_output=True)
        sudoers.unlink(missing_ok=True)
        # the SSH control sockets' folder `ray up` made for this cluster
        digest = {s: hashlib.sha256(s.encode()).hexdigest()[:10] for s in (getpass.getuser(), name)}
        control = Path(f"/tmp/ray_ssh_{digest[getpass.getuser()]}")
        shutil.rmtree(control / digest[name], ignore_errors=True)
        with contextlib.suppress(OSError):
            control.rmdir()  # only if no other cluster of this user has its sockets there
        for path, mode in restore_modes:
            path.chmod(mode)
