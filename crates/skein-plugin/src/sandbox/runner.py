# The first program inside the sandbox (run by Skein's code interpreter, never by users).
# It copies the input files into the working directory, runs the user's program as a child
# with the wall limit, kills whatever the program left behind (a fork bomb's children,
# background processes), and reports the exit and the files the program wrote on fd 3, a pipe
# the server reads. The user's program never gets fd 3 (close_fds), and the runner makes
# itself non-dumpable first, so the program (same uid) cannot reach it through
# /proc/<runner>/fd either; the server checks the report's limits again all the same.
import base64
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time

# PR_SET_DUMPABLE = 4: /proc/<pid>/fd of a non-dumpable process is root's, not ours.
ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)

job = json.load(open("/sandbox/job.json"))
work = "/mnt/data"
inputs = {}
for name in sorted(os.listdir("/sandbox/in")):
    shutil.copyfile(os.path.join("/sandbox/in", name), os.path.join(work, name))
    st = os.stat(os.path.join(work, name))
    inputs[name] = (st.st_size, st.st_mtime_ns)

started = time.monotonic()
report = {"exit_code": None, "signal": None, "timed_out": False, "files": [], "skipped": []}
try:
    child = subprocess.Popen(
        job["command"], stdin=subprocess.DEVNULL, cwd=work, close_fds=True
    )
    try:
        code = child.wait(timeout=job["wall_secs"])
    except subprocess.TimeoutExpired:
        report["timed_out"] = True
        child.kill()
        code = child.wait()
    if code < 0:
        report["signal"] = -code
    else:
        report["exit_code"] = code
except OSError as e:
    report["start_error"] = str(e)
report["elapsed_ms"] = int((time.monotonic() - started) * 1000)

# Everything else in this PID namespace but us and its init: what the program left running.
try:
    os.kill(-1, signal.SIGKILL)
except OSError:
    pass

# The files the program wrote (new or changed), regular files only, within the limits.
budget = job["max_file_bytes"]
for root, dirs, files in os.walk(work, followlinks=False):
    dirs.sort()
    for name in sorted(files):
        path = os.path.join(root, name)
        rel = os.path.relpath(path, work)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not os.path.isfile(path) or os.path.islink(path):
            continue
        if inputs.get(rel) == (st.st_size, st.st_mtime_ns):
            continue
        if len(report["files"]) >= job["max_files"] or st.st_size > budget:
            report["skipped"].append(rel)
            continue
        with open(path, "rb") as f:
            data = f.read(budget + 1)
        if len(data) > budget:
            report["skipped"].append(rel)
            continue
        budget -= len(data)
        report["files"].append({"name": rel, "data": base64.b64encode(data).decode()})

with os.fdopen(3, "w") as out:
    json.dump(report, out)
