"""The test MariaDB server (tests/support/mariadb.py) against a real mariadbd.

The binaries come from ``infra/scripts/install-mariadb.sh``; when they are missing these tests
fail (never skip) and say so.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pymysql
import pytest

from tests.support import mariadb
from tests.support.mariadb import MariaDBNotInstalled, MariaDBServer, pid_alive

ROOT = Path(__file__).resolve().parents[3]
INSTALL_SCRIPT = ROOT / "infra" / "scripts" / "install-mariadb.sh"

ER_ACCESS_DENIED = 1045  # bad user or password
ER_TABLEACCESS_DENIED = 1142  # "INSERT command denied to user ..."


def require_binaries() -> None:
    try:
        mariadb.find_binaries()
    except MariaDBNotInstalled as exc:
        pytest.fail(str(exc), pytrace=False)


def start(data_dir: Path) -> MariaDBServer:
    server = MariaDBServer(data_dir)
    try:
        server.start()
    except MariaDBNotInstalled as exc:
        pytest.fail(str(exc), pytrace=False)
    return server


def tcp_port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def test_server_stores_rows_and_a_select_only_grant_refuses_writes(tmp_path: Path) -> None:
    server = start(tmp_path / "mariadb")
    pid = server.pid
    assert pid is not None
    try:
        assert server.host == "127.0.0.1"
        assert server.url() == (
            f"mysql://root:{server.root_password}@127.0.0.1:{server.port}/customer"
        )

        with server.connect() as root, root.cursor() as cursor:
            cursor.execute("SELECT @@bind_address, @@port, @@character_set_server, DATABASE()")
            assert cursor.fetchone() == ("127.0.0.1", server.port, "utf8mb4", "customer")
            cursor.execute(
                "CREATE TABLE people (id INT PRIMARY KEY AUTO_INCREMENT,"
                " name VARCHAR(64) NOT NULL, phone VARCHAR(20) NOT NULL)"
            )
            cursor.executemany(
                "INSERT INTO people (name, phone) VALUES (%s, %s)",
                [("张三", "13812345678"), ("李四", "13900001111")],
            )
            cursor.execute("CREATE TABLE secrets (id INT PRIMARY KEY)")
            cursor.execute("CREATE USER 'reader'@'127.0.0.1' IDENTIFIED BY 'reader-pw'")
            cursor.execute("GRANT SELECT ON customer.people TO 'reader'@'127.0.0.1'")
            root.commit()

        with server.connect() as root, root.cursor() as cursor:
            cursor.execute("SELECT id, name, phone FROM people ORDER BY id")
            assert cursor.fetchall() == ((1, "张三", "13812345678"), (2, "李四", "13900001111"))

        with server.connect("reader", "reader-pw") as reader, reader.cursor() as cursor:
            cursor.execute("SELECT name FROM people ORDER BY id")
            assert [row[0] for row in cursor.fetchall()] == ["张三", "李四"]
            for statement in (
                "INSERT INTO people (name, phone) VALUES ('王五', '13700000000')",
                "UPDATE people SET phone = '0' WHERE id = 1",
                "DELETE FROM people",
                "SELECT id FROM secrets",
            ):
                with pytest.raises(pymysql.err.OperationalError) as denied:
                    cursor.execute(statement)
                assert denied.value.args[0] == ER_TABLEACCESS_DENIED, statement
                assert "denied" in str(denied.value.args[1])

        with server.connect() as root, root.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM people")
            assert cursor.fetchone() == (2,)

        # Root needs its password, also over TCP.
        with pytest.raises(pymysql.err.OperationalError) as refused:
            server.connect("root", password="wrong")
        assert refused.value.args[0] == ER_ACCESS_DENIED
    finally:
        server.stop()

    assert not pid_alive(pid)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert server.returncode == 0  # a clean shutdown, not SIGKILL
    assert not tcp_port_open(server.port)
    assert not server.socket_path.exists()
    assert "Shutdown complete" in server.log_path.read_text()


def test_server_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """A killed pytest leaves no mariadbd behind (the server gets SIGTERM from the kernel)."""
    require_binaries()
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from tests.support.mariadb import MariaDBServer\n"
        "server = MariaDBServer(Path(sys.argv[1]))\n"
        "server.start()\n"
        "print(server.pid, server.port, flush=True)\n"
        "time.sleep(120)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "orphan")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pid = 0
    try:
        assert owner.stdout is not None
        line = owner.stdout.readline()
        assert line, owner.stderr.read() if owner.stderr else "no output"
        pid, port = (int(part) for part in line.split())
        assert pid_alive(pid)
        assert tcp_port_open(port)
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        assert wait_gone(pid, 30), f"mariadbd {pid} outlived its killed owner"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(timeout=10)
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        if owner.stdout is not None:
            owner.stdout.close()
        if owner.stderr is not None:
            owner.stderr.close()


def test_missing_binaries_name_the_install_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(mariadb, "EXTRA_BIN_DIRS", ())
    with pytest.raises(MariaDBNotInstalled, match=r"infra/scripts/install-mariadb\.sh"):
        mariadb.find_binaries()


def test_install_script_is_a_quiet_no_op_once_installed() -> None:
    require_binaries()
    result = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == ""
