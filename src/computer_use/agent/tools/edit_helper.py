"""The file-system half of the editor, run as the session's user inside its namespace.

`python3 -c HELPER` reads one JSON request on stdin and prints one JSON reply; permissions,
the overlay HOME and the mount namespace of the session all apply because the desktop runs it.
It re-checks the path after resolving symbolic links, which only the session's view can do.
Kept dependency-free and tiny: it runs with whatever python3 the desktop has.
"""

HELPER = r"""
import json, os, sys

req = json.load(sys.stdin)
op, path = req["op"], req["path"]


def done(**reply):
    json.dump(reply, sys.stdout)
    sys.exit(0)


roots = [os.path.realpath(r) for r in req["roots"]]
real = os.path.realpath(path)
if not any(real == r or real.startswith(r.rstrip("/") + "/") for r in roots):
    done(error="escapes", real=real)

if op == "read":
    if os.path.isdir(real):
        lines = []
        for dirpath, dirnames, filenames in os.walk(real):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in dirnames:
                lines.append(os.path.relpath(os.path.join(dirpath, name), real) + "/")
            for name in sorted(filenames):
                if not name.startswith("."):
                    lines.append(os.path.relpath(os.path.join(dirpath, name), real))
            if dirpath[len(real):].count(os.sep) >= 1:
                dirnames[:] = []  # two levels deep at most
        done(kind="dir", listing=sorted(lines))
    if not os.path.exists(real):
        done(kind="missing")
    if not os.path.isfile(real):
        done(error="not a regular file")
    if os.path.getsize(real) > req["max_bytes"]:
        done(error="too large", size=os.path.getsize(real))
    with open(real, "rb") as f:
        data = f.read()
    try:
        done(kind="file", content=data.decode("utf-8"))
    except UnicodeDecodeError:
        done(error="binary")

if op == "write":
    if req.get("exclusive") and os.path.lexists(real):
        done(error="exists")
    os.makedirs(os.path.dirname(real) or "/", exist_ok=True)
    with open(real, "w", encoding="utf-8", newline="") as f:
        f.write(req["content"])
    done(ok=True)

done(error="unknown op " + op)
"""
