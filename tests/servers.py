"""Real services the integration tests start on 127.0.0.1: an S3 server and a Ray head.

The S3 server is moto's standalone server (a separate process speaking the S3 HTTP
API), not an in-process mock: the job reaches it through s3fs exactly as it would
reach AWS, configured only by the standard AWS environment variables.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import cli

BIN = Path(sys.executable).parent
S3_KEY_ID = "asr-test-key"
S3_SECRET = "asr-test-secret-4f7d9c"  # must never appear in any output of the job
IN_SLOW_TEST = True  # set per test by conftest.py: the fast lane (-m "not slow") starts no server and no Ray


def _slow_tests_only(what: str) -> None:
    if not IN_SLOW_TEST:
        raise AssertionError(f"{what} started by a test not marked slow: mark it @pytest.mark.slow "
                             "(the fast lane, -m 'not slow', starts no server and no Ray)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def _forget_s3_clients() -> None:
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


@contextmanager
def s3_server(port: int | None = None) -> Iterator[dict[str, str]]:
    """Start moto_server on a free (or the given) loopback port; yield the AWS environment for it."""
    _slow_tests_only("an S3 server")
    port = port or free_port()
    proc = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        _wait_port(port)
        _forget_s3_clients()  # s3fs keeps one client per set of options: one made for an earlier server is stale
        yield {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": S3_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def s3_client(aws: dict[str, str], bucket: str | None = None):
    """A boto3 client straight to the server of ``aws`` (as ``s3_server`` yields it); creates ``bucket`` if given."""
    import boto3

    client = boto3.client("s3", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name=aws["AWS_DEFAULT_REGION"],
                          aws_access_key_id=aws["AWS_ACCESS_KEY_ID"], aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"])
    if bucket:
        client.create_bucket(Bucket=bucket)
    return client


def job_env(extra: dict[str, str], cache: Path) -> dict[str, str]:
    """Environment for running the job in a subprocess: Ray on loopback, quiet, offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "AWS_"))}
    env.update({
        "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
        "HF_HUB_OFFLINE": "1", "ASR_BATCH_CACHE": str(cache), "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


def ray_stop(env: dict[str, str]) -> None:
    """Stop every Ray process this machine runs (tests run one Ray at a time)."""
    subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env, capture_output=True, timeout=120)


def run_local_job(cache: Path, manifest: Path, output: Path, run_id: str, *sets: str) -> subprocess.CompletedProcess:
    """``asr-batch run configs/local.yaml`` over ``manifest`` with ``--set`` overrides, on a local Ray stopped after."""
    _slow_tests_only("a Ray job")
    env = job_env({}, cache)
    args = ["run", "configs/local.yaml", "--input", str(manifest), "--output", str(output), "--run-id", run_id]
    try:
        return cli.run(*args, *(x for s in sets for x in ("--set", s)), env=env, timeout=600)
    finally:
        ray_stop(env)


def ray_command(python: Path | None = None) -> list[str]:
    """The argv of ``ray``: this venv's, or the Ray CLI run by ``python`` (whose processes then run on it)."""
    return [str(python), "-m", "ray.scripts.scripts"] if python else [str(BIN / "ray")]


@contextmanager
def ray_head(env: dict[str, str], num_cpus: int = 4, python: Path | None = None,
             cwd: Path | None = None) -> Iterator[str]:
    """``ray start --head`` on loopback with a dashboard (job submission); yield its address.

    ``python``: the interpreter the head and its workers run on (default: this venv's); ``cwd``: theirs.
    """
    _slow_tests_only("a Ray head")
    port, dash = free_port(), free_port()
    start = [
        *ray_command(python), "start", "--head", f"--port={port}", f"--num-cpus={num_cpus}",
        "--node-ip-address=127.0.0.1", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dash}", "--disable-usage-stats",
    ]
    subprocess.run(start, env=env, cwd=cwd, check=True, capture_output=True, timeout=180)
    try:
        _wait_port(dash, 120)
        yield f"http://127.0.0.1:{dash}"
    finally:
        ray_stop(env)


class Outage:
    """A TCP relay on 127.0.0.1 in front of a real server, to make that server unreachable for a while.

    ``down()`` closes the listening socket and resets every open connection (clients see
    ``connection refused`` / ``reset``, as when an endpoint or its network goes away);
    ``up()`` listens again on the same port. The server behind keeps its data.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port, self.port = target_port, free_port()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 30
        while True:
            try:
                listener.bind(("127.0.0.1", self.port))
                break
            except OSError:  # the old listener is still being torn down
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked on it; close() alone does not
            except OSError:
                pass
            listener.close()
        for conn in conns:
            try:  # RST, not FIN: an abrupt loss, not a polite close
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            except OSError:
                pass

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                return  # the listener was closed: down()
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@contextmanager
def two_node_cluster(env: dict[str, str], head_cpus: float, worker_cpus: float) -> Iterator[tuple[str, subprocess.Popen]]:
    """A head and a worker node (``cluster_host.py``); yield its address and the host process to command."""
    _slow_tests_only("a Ray cluster")
    host = subprocess.Popen([sys.executable, str(Path(__file__).parent / "cluster_host.py"), str(head_cpus), str(worker_cpus)],
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = host.stdout.readline()
        assert line, "the cluster did not start"
        yield json.loads(line)["address"], host
    finally:
        try:
            host.communicate("quit\n", timeout=120)
        except (subprocess.TimeoutExpired, OSError, ValueError):
            host.kill()
        ray_stop(env)


def cluster_command(host: subprocess.Popen, command: str) -> str:
    """Send ``command`` to ``cluster_host.py`` (``hold-head``, ``kill-worker …``); return its answer."""
    host.stdin.write(command + "\n")
    host.stdin.flush()
    return host.stdout.readline().strip()
