"""Real services for the tests, started on 127.0.0.1: an S3 API (moto's server) and a PostgreSQL server.

Each fixture skips (with the reason) only where its service cannot be run
here: moto not installed, or no PostgreSQL binaries (``.ci/run`` installs
Debian's ``postgresql``).
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

S3_ENV = {"AWS_ACCESS_KEY_ID": "autocls-test", "AWS_SECRET_ACCESS_KEY": "autocls-test", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with code {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


@pytest.fixture(scope="session")
def s3_endpoint():
    """``host:port`` of a moto S3 server; its credentials are in os.environ for the session."""
    server = Path(sys.executable).with_name("moto_server")
    if not server.exists():
        pytest.skip("moto's S3 server is not installed (pip install 'moto[server]')")
    port = free_port()
    proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(S3_ENV)
    try:
        _wait_for_port(port, proc)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


def new_bucket_uri(endpoint: str, prefix: str = "study") -> str:
    """A fresh bucket on the test S3 server, as an artifact store URI."""
    import pyarrow.fs

    bucket = f"autocls-{uuid.uuid4().hex[:12]}"
    query = f"endpoint_override={endpoint}&scheme=http&region=us-east-1"
    fs, _ = pyarrow.fs.FileSystem.from_uri(f"s3://{bucket}?{query}&allow_bucket_creation=true")
    fs.create_dir(bucket)
    return f"s3://{bucket}/{prefix}?{query}"


def _postgres_tool(name: str) -> str | None:
    return shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)


@pytest.fixture(scope="session")
def postgres_url():
    """A SQLAlchemy URL of a fresh database on a PostgreSQL server of its own."""
    initdb, pg_ctl = _postgres_tool("initdb"), _postgres_tool("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    pytest.importorskip("psycopg", reason="the PostgreSQL driver psycopg is not installed")
    folder = Path(tempfile.mkdtemp(prefix="autocls-postgres-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as Debian's postgres user
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-U", "autocls", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(folder / "log"), "-w", "-t", "60", "-o",
                        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"],
                       check=True, capture_output=True, timeout=120)
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=port, user="autocls", dbname="postgres", autocommit=True) as con:
            con.execute("CREATE DATABASE autocls")
        yield f"postgresql://autocls:secret@127.0.0.1:{port}/autocls"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
