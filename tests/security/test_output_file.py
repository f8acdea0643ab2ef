"""Issue 18: `-o FILE` (and `bench --plot`) respects what the path already is, on real file systems.

Devices are real nodes (mknod), FIFOs real FIFOs, full disks a real tmpfs of 16 KiB, read-only file systems a
real tmpfs remounted read-only, EACCES a real root process without CAP_DAC_OVERRIDE, and the signal tests kill a
real `python -m advisor` child inside its write window (held open by the ADVISOR_WRITE_PAUSE test hook).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from advisor.cli import build_parser
from advisor.errors import OutputFileError
from advisor.io.write_output import PAUSE_ENV, TEMP_PREFIX, WAIT_ENV, write_output

ROOT = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (CI and this sandbox run as root)")


def _temps(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX)]


def _one_line_exit_2(code: int, err: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("advisor: error: cannot write ") and "Traceback" not in err


@pytest.fixture(scope="module")
def matrix_text() -> str:
    """What `advisor matrix` prints (about 100 KiB): the content the writes below must deliver whole."""
    import contextlib
    import io

    from advisor.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["matrix"]) == 0
    return buffer.getvalue()


def _mount_tmpfs(folder: Path, size: str) -> None:
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); needs root with CAP_SYS_ADMIN")


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 16 KiB tmpfs, unmounted afterwards."""
    if not IS_ROOT or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    folder = tmp_path / "mnt"
    folder.mkdir()
    _mount_tmpfs(folder, "16k")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _node(tmp_path: Path, name: str, minor: int) -> Path:
    """A private copy of /dev/null (minor 3) or /dev/full (minor 7); the real one where mknod is not allowed."""
    path = tmp_path / name
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
        os.chmod(path, 0o666)
    except PermissionError:
        return Path(f"/dev/{name}")
    return path


# -- standard output ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["-", "/dev/stdout"])
def test_dash_and_dev_stdout_mean_standard_output(cli: Any, name: str, matrix_text: str) -> None:
    code, out, err = cli("matrix", "-o", name)
    assert code == 0, err
    assert out == matrix_text


def test_dev_stdout_through_a_pipe_in_a_real_process() -> None:
    """The issue's exit 3: the temporary file could not be created in /proc/PID/fd/."""
    done = subprocess.run([sys.executable, "-m", "advisor", "matrix", "--format", "json", "-o", "/dev/stdout"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("{") and done.stderr == ""


# -- devices, FIFOs, sockets: written in place ----------------------------------------------------------------

@needs_root
def test_a_device_is_written_in_place_not_replaced(cli: Any, tmp_path: Path) -> None:
    node = _node(tmp_path, "null", 3)
    before = os.stat(node)
    code, out, err = cli("doctor", "--cpu", "-o", str(node))
    after = os.stat(node)
    assert code == 0, err
    assert out == "" and stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino
    assert _temps(node.parent) == []


def test_the_real_dev_null_stays_a_device(cli: Any) -> None:
    """The issue's first finding, exactly: `advisor doctor -o /dev/null` as root replaced the device."""
    before = os.stat("/dev/null")
    try:
        code, _, err = cli("doctor", "--cpu", "-o", "/dev/null")
    finally:
        after = os.stat("/dev/null")
        if not stat.S_ISCHR(after.st_mode) and IS_ROOT:  # a regression must not leave the machine without /dev/null
            os.unlink("/dev/null")
            os.mknod("/dev/null", stat.S_IFCHR | 0o666, before.st_rdev)
            os.chmod("/dev/null", 0o666)
    assert code == 0, err
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)


@needs_root
def test_a_full_device_gives_one_line_exit_2(cli: Any, tmp_path: Path) -> None:
    node = _node(tmp_path, "full", 7)
    code, _, err = cli("matrix", "-o", str(node))
    _one_line_exit_2(code, err)
    assert "no space left on device" in err
    assert stat.S_ISCHR(os.stat(node).st_mode)


def test_a_fifo_is_written_in_place(cli: Any, tmp_path: Path, matrix_text: str) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    code, _, err = cli("matrix", "-o", str(fifo))
    reader.join(timeout=60)
    assert code == 0, err
    assert received == [matrix_text.encode()]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and sorted(tmp_path.iterdir()) == [fifo]


def test_a_fifo_without_a_reader_fails_instead_of_hanging(tmp_path: Path) -> None:
    """No reader: the open is retried for ADVISOR_OUTPUT_WAIT seconds, then one line, exit 2 (a real child, bounded)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    done = subprocess.run([sys.executable, "-m", "advisor", "matrix", "-o", str(fifo)], cwd=ROOT,
                          env={**os.environ, WAIT_ENV: "0.5"}, capture_output=True, text=True, timeout=300, check=False)
    _one_line_exit_2(done.returncode, done.stderr)
    assert "no process opened the FIFO for reading within 0.5 s" in done.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and sorted(tmp_path.iterdir()) == [fifo]


def test_a_socket_is_connected_to_not_replaced(cli: Any, tmp_path: Path, matrix_text: str) -> None:
    path = tmp_path / "s.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    received = bytearray()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(65536):
                received.extend(chunk)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        code, _, err = cli("matrix", "-o", str(path))
        thread.join(timeout=60)
    finally:
        server.close()
    assert code == 0, err
    assert bytes(received) == matrix_text.encode()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


# -- symlinks -------------------------------------------------------------------------------------------------

def test_a_symlink_is_resolved_and_its_target_replaced(cli: Any, tmp_path: Path, matrix_text: str) -> None:
    links, real = tmp_path / "links", tmp_path / "real"
    links.mkdir()
    real.mkdir()
    target = real / "report.txt"
    target.write_text("previous report")
    (links / "middle").symlink_to(target)
    link = links / "report.txt"
    link.symlink_to("middle")  # a relative link to a link
    code, _, err = cli("matrix", "-o", str(link))
    assert code == 0, err
    assert os.readlink(link) == "middle" and os.readlink(links / "middle") == str(target)
    assert target.read_text() == matrix_text and not target.is_symlink()
    assert _temps(links, real) == []


def test_a_dangling_symlink_creates_its_target(cli: Any, tmp_path: Path, matrix_text: str) -> None:
    link = tmp_path / "latest.txt"
    link.symlink_to("reports/2026.txt")
    (tmp_path / "reports").mkdir()
    code, _, err = cli("matrix", "-o", str(link))
    assert code == 0, err
    assert link.is_symlink() and (tmp_path / "reports" / "2026.txt").read_text() == matrix_text


def test_a_symlink_loop_is_one_line_exit_2(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    code, _, err = cli("matrix", "-o", str(tmp_path / "a"))
    _one_line_exit_2(code, err)
    assert "symbolic links" in err


# -- mode, owner, read-only -----------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", [0o600, 0o640, 0o664])
def test_an_existing_file_keeps_its_mode(cli: Any, tmp_path: Path, mode: int) -> None:
    out = tmp_path / "report.txt"
    out.write_text("previous")
    out.chmod(mode)
    code, _, err = cli("matrix", "-o", str(out))
    assert code == 0, err
    assert stat.S_IMODE(out.stat().st_mode) == mode and out.read_text() != "previous"


def test_a_new_file_gets_the_mode_open_would_give(cli: Any, tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        code, _, err = cli("matrix", "-o", str(tmp_path / "new.txt"))
    finally:
        os.umask(old)
    assert code == 0, err
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o640


@needs_root
def test_an_existing_file_keeps_its_owner(cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "report.txt"
    out.write_text("previous")
    os.chown(out, 65534, 65534)
    code, _, err = cli("matrix", "-o", str(out))
    assert code == 0, err
    st = out.stat()
    assert (st.st_uid, st.st_gid) == (65534, 65534) and out.read_text() != "previous"


@pytest.mark.parametrize("mode", [0o444, 0o400])
def test_a_read_only_file_is_refused_even_for_root(cli: Any, tmp_path: Path, mode: int) -> None:
    out = tmp_path / "report.txt"
    out.write_text("read-only on purpose")
    out.chmod(mode)
    before = out.stat()
    code, _, err = cli("matrix", "-o", str(out))
    _one_line_exit_2(code, err)
    assert f"{out} is read-only" in err and "--force" in err
    assert out.read_text() == "read-only on purpose" and out.stat().st_mtime_ns == before.st_mtime_ns
    assert _temps(tmp_path) == []


def test_force_replaces_a_read_only_file_and_keeps_it_read_only(cli: Any, tmp_path: Path, matrix_text: str) -> None:
    out = tmp_path / "report.txt"
    out.write_text("read-only on purpose")
    out.chmod(0o444)
    code, _, err = cli("matrix", "-o", str(out), "--force")
    assert code == 0, err
    assert out.read_text() == matrix_text and stat.S_IMODE(out.stat().st_mode) == 0o444


def test_proc_version_is_refused_as_read_only(cli: Any) -> None:
    """The issue's `-o /proc/version` gave exit 3; it is a read-only file."""
    code, _, err = cli("matrix", "-o", "/proc/version")
    _one_line_exit_2(code, err)
    assert "/proc/version is read-only" in err


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_with_output_has_force() -> None:
    with_output = {name: p for name, p in _subcommands().items()
                   if any("--output" in a.option_strings for a in p._actions)}
    assert {"probe", "doctor", "recommend", "check", "matrix", "smoke", "bench"} <= set(with_output)
    missing = [name for name, p in with_output.items() if not any("--force" in a.option_strings for a in p._actions)]
    assert missing == []


@pytest.mark.parametrize("argv", [
    ["probe", "--no-import-check", "--cpu"],
    ["doctor", "--cpu"],
    ["recommend", "gpt2", "--cpu"],
    ["check", "gpt2", "--cpu", "--attn", "sdpa"],
    ["matrix", "--full", "--format", "html"],
], ids=lambda argv: argv[0])
def test_every_command_writes_through_the_one_writer(cli: Any, tmp_path: Path, argv: list[str]) -> None:
    """Each command: a symlink to a private 0600 file stays a link, the file keeps 0600; a 0444 file is refused."""
    target = tmp_path / "private.out"
    target.write_text("previous")
    target.chmod(0o600)
    link = tmp_path / "link.out"
    link.symlink_to(target.name)
    code, _, err = cli(*argv, "-o", str(link))
    assert code in (0, 1), err
    assert link.is_symlink() and target.read_text() != "previous"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and _temps(tmp_path) == []
    target.chmod(0o444)
    code, _, err = cli(*argv, "-o", str(link))
    _one_line_exit_2(code, err)
    assert "is read-only" in err


def test_bench_plot_goes_through_the_writer(cli: Any, tiny_llama: Path, tmp_path: Path) -> None:
    plot_target = tmp_path / "charts" / "bench.png"
    plot_target.parent.mkdir()
    plot_target.write_bytes(b"old chart")
    plot_target.chmod(0o600)
    plot_link = tmp_path / "bench.png"
    plot_link.symlink_to(plot_target)
    common = ["bench", str(tiny_llama), "--cpu", "--seq-len", "4", "--new-tokens", "2", "--repeats", "1",
              "--attn", "sdpa", "--dtype", "float32", "--format", "json"]
    plot_target.chmod(0o400)
    code, _, err = cli(*common, "--plot", str(plot_link))  # refused before anything is benchmarked
    _one_line_exit_2(code, err)
    assert "is read-only" in err and plot_target.read_bytes() == b"old chart"
    code, _, err = cli(*common, "--plot", str(plot_link), "--force", "-o", "-")
    assert code == 0, err
    assert plot_link.is_symlink() and plot_target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stat.S_IMODE(plot_target.stat().st_mode) == 0o400 and _temps(tmp_path, plot_target.parent) == []


# -- errors from the file system: one line, exit 2, no temporary file --------------------------------------------

def test_a_full_disk_is_one_line_exit_2_and_keeps_the_old_file(cli: Any, small_tmpfs: Path) -> None:
    out = small_tmpfs / "report.txt"
    out.write_text("previous report")
    code, _, err = cli("matrix", "-o", str(out))  # about 100 KiB into 16 KiB
    _one_line_exit_2(code, err)
    assert "no space left on device" in err
    assert out.read_text() == "previous report" and sorted(small_tmpfs.iterdir()) == [out]


def test_a_read_only_file_system_is_one_line_exit_2(cli: Any, small_tmpfs: Path) -> None:
    out = small_tmpfs / "report.txt"
    out.write_text("previous report")
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    for extra in ([], ["--force"]):
        code, _, err = cli("matrix", "-o", str(out), *extra)
        _one_line_exit_2(code, err)
        assert "read-only file system" in err
    with pytest.raises(OutputFileError, match="read-only file system"):  # the writer itself, past the CLI's check
        write_output(out, "new")
    assert out.read_text() == "previous report" and sorted(small_tmpfs.iterdir()) == [out]


@needs_root
def test_permission_denied_is_one_line_exit_2(tmp_path: Path) -> None:
    """EACCES for real: root without CAP_DAC_OVERRIDE, writing into a folder owned by nobody."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop CAP_DAC_OVERRIDE")
    tmp_path.chmod(0o755)
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o755)
    out = folder / "report.txt"
    out.write_text("previous report")
    os.chown(folder, 65534, 65534)
    os.chown(out, 65534, 65534)
    drop = "-dac_override,-dac_read_search"
    for extra in ([], ["--force"]):
        done = subprocess.run(["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", sys.executable, "-m",
                               "advisor", "matrix", "-o", str(out), *extra],
                              cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
        _one_line_exit_2(done.returncode, done.stderr)
        assert "permission denied" in done.stderr
    assert out.read_text() == "previous report" and sorted(folder.iterdir()) == [out]


def test_a_name_too_long_is_one_line_exit_2(cli: Any, tmp_path: Path) -> None:
    code, _, err = cli("matrix", "-o", str(tmp_path / ("a" * 300)))
    _one_line_exit_2(code, err)
    assert "file name too long" in err and list(tmp_path.iterdir()) == []


def test_a_long_name_that_fits_is_written(cli: Any, tmp_path: Path, matrix_text: str) -> None:
    """A 250-byte name fits NAME_MAX; its temporary name must too (the old `.NAME.XXXX.tmp` did not)."""
    out = tmp_path / ("b" * 250)
    code, _, err = cli("matrix", "-o", str(out))
    assert code == 0, err
    assert out.read_text() == matrix_text and list(tmp_path.iterdir()) == [out]


# -- signals and stale temporary files ----------------------------------------------------------------------------

def _child_in_write_window(out: Path) -> subprocess.Popen[str]:
    """`python -m advisor matrix -o OUT`, paused by the test hook with a half-written temporary file beside OUT."""
    child = subprocess.Popen([sys.executable, "-m", "advisor", "matrix", "-o", str(out)], cwd=ROOT,
                             env={**os.environ, PAUSE_ENV: "120"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.monotonic() + 240
    while not _temps(out.parent):
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            _, err = child.communicate()
            pytest.fail(f"the child never reached its write window (exit {child.returncode}): {err}")
        time.sleep(0.05)
    return child


@pytest.mark.parametrize(("sig", "expected"), [
    # the CLI turns each into one line and exit 128 + N (advisor/isolation/interrupts.py, issue 15)
    (signal.SIGTERM, 128 + signal.SIGTERM),
    (signal.SIGHUP, 128 + signal.SIGHUP),
    (signal.SIGINT, 128 + signal.SIGINT),
], ids=lambda v: getattr(v, "name", str(v)))
def test_a_signal_in_the_write_window_removes_the_temporary_file(tmp_path: Path, sig: signal.Signals,
                                                                 expected: int) -> None:
    out = tmp_path / "report.txt"
    out.write_text("previous report")
    child = _child_in_write_window(out)
    assert _temps(tmp_path) and out.read_text() == "previous report"
    child.send_signal(sig)
    _, err = child.communicate(timeout=120)
    assert child.returncode == expected, err
    assert _temps(tmp_path) == [] and out.read_text() == "previous report"
    assert sorted(tmp_path.iterdir()) == [out]


def test_sigkill_leftovers_are_removed_by_the_next_run_after_a_minute(cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "report.txt"
    out.write_text("previous report")
    child = _child_in_write_window(out)
    child.kill()
    child.communicate(timeout=120)
    (left,) = _temps(tmp_path)  # SIGKILL cannot be caught: the temporary file stays...
    old = time.time() - 120
    os.utime(left, (old, old))
    fresh = tmp_path / f"{TEMP_PREFIX}report.txt.0123456789abcdef.tmp"  # ...a run still writing (under a minute)
    fresh.write_text("another run, in progress")
    not_ours = tmp_path / f"{TEMP_PREFIX}notes.tmp"  # our prefix but not our name pattern
    not_ours.write_text("keep")
    os.utime(not_ours, (old, old))
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    other_left = elsewhere / left.name
    shutil.copy2(left, other_left)  # stale, but not in the folder being written to
    code, _, err = cli("matrix", "-o", str(out))
    assert code == 0, err
    assert not left.exists() and fresh.exists() and not_ours.exists() and other_left.exists()
    assert out.read_text() != "previous report"


def test_signal_handlers_are_restored_after_the_write(cli: Any, tmp_path: Path) -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    code, _, err = cli("matrix", "-o", str(tmp_path / "report.txt"))
    assert code == 0, err
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_dev_stderr_redirected_to_a_log_is_appended_to_not_replaced(tmp_path: Path) -> None:
    """`-o /dev/stderr` with `2>>log`: a link to an open descriptor is written in place, after what is there."""
    log = tmp_path / "log"
    log.write_text("first line\n")
    inode = log.stat().st_ino
    with open(log, "r+b") as handle:
        handle.seek(0, os.SEEK_END)
        done = subprocess.run([sys.executable, "-m", "advisor", "matrix", "--format", "json", "-o", "/dev/stderr"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=handle, timeout=300, check=False)
    assert done.returncode == 0 and done.stdout == b""
    text = log.read_text()
    assert log.stat().st_ino == inode and text.startswith("first line\n{") and text.rstrip().endswith("}")
    assert sorted(tmp_path.iterdir()) == [log]
