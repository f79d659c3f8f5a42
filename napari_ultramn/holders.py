"""Who holds a lock: process id, host, process start time, command; and whether that is still true.

A pid alone cannot tell a live holder from a dead one: after a crash the pid may be reused by an
unrelated process (a lock would then block forever), and a lock written on another machine names a
pid we cannot look up. So every lock we write records the host and the process *start time*
(Linux: ``/proc/<pid>/stat`` field 22, clock ticks since boot; elsewhere psutil's ``create_time`` when
psutil is installed, else None). :func:`holder_state` then says:

* ``"live"``: this host, the pid exists and (when both are known) started at the recorded time;
* ``"stale"``: this host and the pid is gone, or it now belongs to a process that started later;
* ``"foreign"``: written on another host; we cannot check it, so it is respected, and the message
  names the command that breaks it (:func:`unlock_hint`) once the user knows that run is over.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shlex
import socket
import sys
import uuid
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (signal 0 probes without killing)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def process_start_time(pid: int) -> int | float | None:
    """When the process started, in a unit only comparable on this host; None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        stat = None
    if stat is not None:
        # the command name (field 2) may hold spaces and ')': the fields after the last ')' are 3...
        try:
            return int(stat.rsplit(")", 1)[1].split()[19])  # field 22: starttime
        except (IndexError, ValueError):
            return None
    try:
        import psutil
    except ImportError:
        return None
    try:
        return psutil.Process(pid).create_time()
    except Exception:  # NoSuchProcess, AccessDenied
        return None


def holder_info(command: str | None = None, **extra) -> dict:
    """What a lock records about the process taking it (``token`` tells our own lock from a takeover)."""
    pid = os.getpid()
    return {
        "pid": pid,
        "hostname": socket.gethostname(),
        "start_time": process_start_time(pid),
        "acquired": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command if command is not None else current_command(),
        "token": uuid.uuid4().hex,
        **extra,
    }


def current_command() -> str:
    """This process's command line as a user would type it (``ultramn build-dataset ...``)."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name in ("ultramn", "__main__.py"):
        argv[0] = "ultramn"
    return shlex.join(argv) if argv else ""


def holder_state(info: dict | None) -> str:
    """``"live"``, ``"stale"`` or ``"foreign"`` (see the module docstring); unreadable = stale."""
    if not isinstance(info, dict):
        return "stale"
    if info.get("hostname") != socket.gethostname():
        return "foreign"
    try:
        pid = int(info.get("pid", -1))
    except (TypeError, ValueError):
        return "stale"
    if not pid_alive(pid):
        return "stale"
    recorded, now = info.get("start_time"), process_start_time(pid)
    if recorded is not None and now is not None and recorded != now:
        return "stale"  # the pid was reused by a process that started later
    return "live"


def describe_holder(info: dict | None) -> str:
    """``process 1234 on host ws-7 since 2026-11-30T13:00:00+00:00 (`ultramn build-dataset ...`)``."""
    if not isinstance(info, dict):
        return "an unknown process (the lock file is unreadable)"
    text = f"process {info.get('pid')} on {info.get('hostname')}, since {info.get('acquired')}"
    if info.get("command"):
        text += f", running `{info['command']}`"
    return text


def unlock_hint(lock_path: str | Path) -> str:
    """The exact command that breaks a lock whose holder we cannot check."""
    return f"if it is no longer running, break the lock with `ultramn unlock {shlex.quote(str(lock_path))}`"


def read_holder(path: str | Path) -> dict | None:
    """The holder's info, or ``None`` if there is no lock or it cannot be parsed."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def break_lock(path: str | Path, *, force: bool = False) -> tuple[Path, dict | None]:
    """Remove a lock file (``ultramn unlock``): an annotation lock, ``<out>.lock``, or the output
    folder ``<out>`` (meaning its ``<out>.lock``: any path not ending in ``.lock``). A holder that is
    alive on this host is refused unless ``force``. Returns the lock's path and what it recorded."""
    from .errors import ConflictError, InputError

    path = Path(path)
    if path.suffix != ".lock":
        path = path.with_name(path.name + ".lock")
    if not path.is_file():
        raise InputError(path, "no lock file here (nothing to unlock)")
    info = read_holder(path)
    if holder_state(info) == "live" and not force:
        raise ConflictError(
            f"{path}: held by {describe_holder(info)}, which is still running; stop it first (or add --force)"
        )
    path.unlink(missing_ok=True)
    return path, info
