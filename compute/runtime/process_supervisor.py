"""The process runtime's supervisor program, and the mark that finds a container's processes.

Every process of a "container" carries `MARK_ENV=<its state folder>` in its environment (the
runtime sets it for the command; everything the command starts inherits it). The supervisor
(`SUPERVISOR`, see `compute.runtime.process`) and the runtime's `stop`/`remove` end a container by
killing every process with its mark, not only its process group: a process that started a
session of its own (a daemon, a helper server) is found all the same.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import psutil

MARK_ENV = "STUDIOLO_CONTAINER"  # every process of a container carries its state folder here

# The supervisor, run as `python -c SUPERVISOR <state folder> <MARK_ENV>`. Standard library plus
# psutil (a Studiolo dependency, so present in the interpreter that runs Studiolo).
SUPERVISOR = r"""
import json, os, resource, signal, subprocess, sys, threading, time
import psutil

state = sys.argv[1]
MARK = sys.argv[2]

def path(name):
    return os.path.join(state, name)

def write_atomic(name, text):
    try:
        with open(path(name + ".tmp"), "w") as f:
            f.write(text)
        os.replace(path(name + ".tmp"), path(name))
    except FileNotFoundError:
        pass  # the container was removed meanwhile

def kill_marked():
    # Everything the command started, wherever it went: its group, and any marked process
    # that left it (a new session, a daemon reparented to init).
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.environ().get(MARK) == state:
                process.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass

with open(path("launch.json")) as f:
    launch = json.load(f)
ready_r, ready_w = os.pipe()
if os.fork():
    # The launcher: the caller waits for it; it waits until the supervisor has started the
    # command (or found it cannot), then exits, leaving the supervisor to init.
    os.close(ready_w)
    sys.exit(0 if os.read(ready_r, 1) == b"k" else 1)
os.close(ready_r)
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    # A no-op handler rather than SIG_IGN: handlers are reset by exec, ignored signals are not.
    signal.signal(sig, lambda signum, frame: None)
memory = launch.get("memory_bytes")

def limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

out = os.open(path("stdout.log"), os.O_WRONLY | os.O_APPEND)
err = os.open(path("stderr.log"), os.O_WRONLY | os.O_APPEND)
me = psutil.Process()
try:
    child = subprocess.Popen(
        launch["argv"], cwd=launch["cwd"], env=launch["env"], stdin=subprocess.DEVNULL,
        stdout=out, stderr=err, start_new_session=True,
        preexec_fn=limit_memory if memory else None,
    )
except OSError as exc:
    # What docker's init does when exec fails: say so on stderr, exit 127 (not found) or 126.
    message = f"exec {launch['argv'][0]} failed: {exc.strerror or exc}"
    os.write(err, f"[studiolo process runtime] {message}\n".encode())
    write_atomic("error", message)
    write_atomic("exit_code", "127\n" if isinstance(exc, FileNotFoundError) else "126\n")
    os.write(ready_w, b"k")
    sys.exit(0)
try:
    child_created = psutil.Process(child.pid).create_time()
except psutil.NoSuchProcess:
    child_created = 0.0
write_atomic("process.json", json.dumps({
    "pid": child.pid, "create_time": child_created,
    "supervisor_pid": me.pid, "supervisor_create_time": me.create_time(),
    "started_at": time.time(),
}))
os.write(ready_w, b"k")
os.close(ready_w)
ended = threading.Event()

def watch_state_folder():
    # The folder gone means the container was removed: nothing of it may go on running.
    while not ended.wait(1.0):
        if not os.path.isfile(path("spec.json")):
            kill_marked()

threading.Thread(target=watch_state_folder, daemon=True).start()
returncode = child.wait()
ended.set()
try:
    os.killpg(child.pid, signal.SIGKILL)  # whatever the process left behind in its group
except OSError:
    pass
kill_marked()
write_atomic("exit_code", f"{128 - returncode if returncode < 0 else returncode}\n")
"""


def marked_processes(mark: str | None = None) -> list[psutil.Process]:
    """Live processes carrying a container's mark (`MARK_ENV`); with `mark`, that
    container's only. Processes of other users are skipped (their environment is not ours
    to read, and they are not ours to kill)."""
    found = []
    for process in psutil.process_iter():
        try:
            value = process.environ().get(MARK_ENV)
            if (
                value is not None
                and (mark is None or value == mark)
                and process.status() != psutil.STATUS_ZOMBIE
            ):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def kill_marked(folder: Path) -> None:
    for process in marked_processes(str(folder.resolve())):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            process.kill()
