"""Runs an Argo CD health script on Kubernetes objects, the way Argo CD does.

Usage: health.py SCRIPT OBJECT.json...; prints one JSON line per object:
{"file": ..., "status": ..., "message": ...}. Argo CD runs health scripts with gopher-lua,
a Lua 5.1, and a global `obj`; lupa's Lua 5.1 runtime does the same here.
"""

import json
import sys

from lupa.lua51 import LuaRuntime


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        script = f.read()
    for path in sys.argv[2:]:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
        lua = LuaRuntime()
        lua.globals().obj = lua.table_from(obj, recursive=True)
        result = lua.execute(script)
        print(json.dumps({"file": path, "status": result["status"], "message": result["message"]}))


if __name__ == "__main__":
    main()
