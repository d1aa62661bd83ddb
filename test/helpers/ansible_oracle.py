"""The test oracle: ansible-core itself, run once per batch of cases.

Reads a JSON request on stdin:
  {"inventory": [{"id": ..., "sources": [...], "hosts": [...], "graph": true}],
   "templates": [{"id": ..., "template": "...", "vars": {...}}]}
and writes one JSON answer on stdout:
  {"inventory": {id: {"list": ..., "hosts": {name: ...}, "graph": "..."} | {"error": "..."}},
   "templates": {id: {"value": ..., "type": "int"} | {"error": "..."}}}

Inventories go through ansible-inventory's own CLI class (the same code as the command, with
its output captured); templates through ansible-core's Templar in native mode
(ANSIBLE_JINJA2_NATIVE=1, set by the caller), where `{{ expr }}` keeps the expression's type.
"""
import contextlib
import io
import json
import os
import sys
import tempfile


def main():
    req = json.load(sys.stdin)
    from ansible.cli.inventory import InventoryCLI
    from ansible.module_utils.common.text.converters import to_text

    out = {"inventory": {}, "templates": {}, "version": None}
    from ansible.release import __version__
    out["version"] = __version__
    neutral = tempfile.mkdtemp()
    os.chdir(neutral)

    from ansible.utils.context_objects import GlobalCLIArgs

    def cli(args):
        # the parsed options are a process-wide singleton: forget the previous case's
        GlobalCLIArgs._Singleton__instance = None
        buf, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
            try:
                rc = InventoryCLI(["ansible-inventory"] + args).run()
            except SystemExit as e:  # the command ends with sys.exit(0)
                rc = e.code
        if rc not in (0, None):
            raise RuntimeError("ansible-inventory exit %s: %s" % (rc, err.getvalue()))
        return buf.getvalue(), err.getvalue()

    for case in req.get("inventory", []):
        src = []
        for s in case["sources"]:
            src += ["-i", s]
        res = {}
        try:
            text, warnings = cli(src + ["--list"])
            res["list"] = json.loads(text)
            res["warnings"] = warnings
            res["hosts"] = {}
            for h in case.get("hosts", []):
                res["hosts"][h] = json.loads(cli(src + ["--host", h])[0])
            if case.get("graph"):
                res["graph"] = cli(src + ["--graph"])[0]
        except BaseException as e:  # noqa: B902 - the oracle reports every failure
            res = {"error": "%s: %s" % (type(e).__name__, e)}
        out["inventory"][case["id"]] = res

    if req.get("templates"):
        from ansible.parsing.dataloader import DataLoader
        from ansible.template import Templar
        loader = DataLoader()
        for case in req["templates"]:
            try:
                t = Templar(loader=loader, variables=case.get("vars", {}))
                v = t.template(case["template"])
                out["templates"][case["id"]] = {"value": plain(v), "type": kind(v)}
            except BaseException as e:  # noqa: B902
                out["templates"][case["id"]] = {"error": "%s: %s" % (type(e).__name__, to_text(e))}
    json.dump(out, sys.stdout)


def kind(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if v is None:
        return "none"
    if isinstance(v, (list, tuple)):
        return "list"
    if isinstance(v, dict):
        return "dict"
    return type(v).__name__


def plain(v):
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, (bool, int, float)) or v is None:
        return v
    return str(v)


if __name__ == "__main__":
    main()
