#!/usr/bin/env python3
"""Renders Skein's Helm chart without the helm binary (which no package registry we use
ships): a small interpreter of exactly the Go-template subset the chart's templates use.

Anything outside that subset is an error, never silently rendered differently; so a template
that passes here renders the same under `helm template`, as long as it stays in the subset:

  actions   {{ pipeline }}, {{- trim markers -}}, {{/* comments */}}, $var := / = pipeline
  control   if / else if / else / end, range [$k, $v :=] x (maps in sorted key order),
            with, define "name", include "name" ctx
  operands  . .A.B $ $var $var.A "string" `raw` numbers true false nil (pipeline)
  functions default quote squote toYaml nindent indent printf eq ne not and or required
            upper lower trunc trimSuffix replace join list dict hasKey empty toString
            int fail b64enc

Usage: helm_render.py CHART_DIR [-f values.yaml ...] [--name RELEASE] [--namespace NS]
       [--set-string key.path=value ...]
Prints the manifests as one YAML stream (like `helm template`), each preceded by
`# Source: <chart>/templates/<file>`.
"""

import argparse
import base64
import copy
import json
import os
import re
import sys

import yaml


class TemplateError(Exception):
    """A template outside the supported subset, or a failed `required` / `fail`."""


# ---------------------------------------------------------------- lexing the template text

ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)


def lex(text):
    """Splits `text` into ('text', s) and ('action', s) parts, applying the trim markers."""
    parts = []
    pos = 0
    for m in ACTION.finditer(text):
        before = text[pos:m.start()]
        if m.group(1):
            before = before.rstrip(" \t\r\n")
        parts.append(("text", before))
        body = m.group(2).strip()
        if not (body.startswith("/*") and body.endswith("*/")):
            parts.append(("action", body))
        pos = m.end()
        if m.group(3):
            rest = text[pos:]
            pos += len(rest) - len(rest.lstrip(" \t\r\n"))
    parts.append(("text", text[pos:]))
    return parts


TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<decl>:=)
    | (?P<assign>=)
    | (?P<punct>[()|,])
    | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
    | (?P<field>(?:\.[A-Za-z0-9_]+)+|\.)
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.X,
)


def tokens(src):
    out = []
    pos = 0
    src = src.rstrip()
    while pos < len(src):
        m = TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"cannot read {src[pos:]!r} in {{{{ {src} }}}}")
        kind = m.lastgroup
        # `(pipeline).Field` (no space) reads a field of the result; `(pipeline) .Field` is
        # a separate operand.
        if kind == "field" and m.start(kind) == pos and out and out[-1] == ("punct", ")"):
            kind = "chain"
        out.append((kind, m.group(m.lastgroup)))
        pos = m.end()
    return out


# ---------------------------------------------------------------- parsing into a tree

def parse(parts, i=0, stop=()):
    """Parses parts from `i` until an action whose keyword is in `stop`; returns
    (nodes, index of the stop action or len(parts))."""
    nodes = []
    while i < len(parts):
        kind, body = parts[i]
        if kind == "text":
            nodes.append(("text", body))
            i += 1
            continue
        word = body.split(None, 1)[0] if body else ""
        if word in stop:
            return nodes, i
        rest = body[len(word):].strip()
        if word == "if":
            branches = []
            cond = rest
            while True:
                inner, i = parse(parts, i + 1, ("else", "end"))
                branches.append((cond, inner))
                _, stop_body = parts[i]
                if stop_body.startswith("else if "):
                    cond = stop_body[len("else if "):].strip()
                    continue
                if stop_body == "else":
                    inner, i = parse(parts, i + 1, ("end",))
                    branches.append((None, inner))
                break
            nodes.append(("if", branches))
            i += 1
        elif word in ("range", "with"):
            inner, i = parse(parts, i + 1, ("else", "end"))
            otherwise = []
            if parts[i][1] == "else":
                otherwise, i = parse(parts, i + 1, ("end",))
            nodes.append((word, rest, inner, otherwise))
            i += 1
        elif word == "define":
            name = json.loads(rest)
            inner, i = parse(parts, i + 1, ("end",))
            nodes.append(("define", name, inner))
            i += 1
        elif word in ("else", "end"):
            raise TemplateError(f"unexpected {{{{ {body} }}}}")
        elif word in ("template", "block", "break", "continue"):
            raise TemplateError(f"{word} is outside the supported subset")
        else:
            nodes.append(("action", body))
            i += 1
    if stop:
        raise TemplateError(f"missing {{{{ end }}}} (looking for {stop})")
    return nodes, i


# ---------------------------------------------------------------- evaluation

def truthy(v):
    if v is None or v is False:
        return False
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v != 0
    if isinstance(v, (str, list, dict, tuple)):
        return len(v) > 0
    return True


def to_text(v):
    if v is None:
        return ""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dict, list)):
        raise TemplateError(f"printing a {type(v).__name__} directly; use toYaml")
    return str(v)


def go_quote(s):
    return json.dumps(s, ensure_ascii=False)


def to_yaml(v):
    if v is None:
        return "null"
    return yaml.safe_dump(v, sort_keys=True, default_flow_style=False, allow_unicode=True).rstrip("\n")


def go_printf(fmt, *args):
    out = []
    it = iter(args)
    i = 0
    while i < len(fmt):
        c = fmt[i]
        if c == "%" and i + 1 < len(fmt):
            verb = fmt[i + 1]
            i += 2
            if verb == "%":
                out.append("%")
            elif verb in "sdv":
                out.append(to_text(next(it)))
            elif verb == "q":
                out.append(go_quote(to_text(next(it))))
            else:
                raise TemplateError(f"printf verb %{verb} is outside the subset")
            continue
        out.append(c)
        i += 1
    return "".join(out)


def fn_required(msg, v):
    if not truthy(v) and v is not False and v != 0:
        raise TemplateError(msg)
    return v


def fn_fail(msg):
    raise TemplateError(msg)


def fn_and(*args):
    for a in args:
        if not truthy(a):
            return a
    return args[-1]


def fn_or(*args):
    for a in args:
        if truthy(a):
            return a
    return args[-1]


def fn_dict(*args):
    return {args[i]: args[i + 1] for i in range(0, len(args), 2)}


FUNCTIONS = {
    "default": lambda d, v=None: v if truthy(v) else d,
    "quote": lambda *v: " ".join(go_quote(to_text(x)) for x in v),
    "squote": lambda *v: " ".join("'" + to_text(x) + "'" for x in v),
    "toYaml": to_yaml,
    "nindent": lambda n, s: "\n" + "\n".join((" " * n + line) if line else line for line in to_text(s).split("\n")),
    "indent": lambda n, s: "\n".join((" " * n + line) if line else line for line in to_text(s).split("\n")),
    "printf": go_printf,
    "eq": lambda a, *b: any(a == x for x in b),
    "ne": lambda a, b: a != b,
    "not": lambda v: not truthy(v),
    "and": fn_and,
    "or": fn_or,
    "required": fn_required,
    "upper": lambda s: to_text(s).upper(),
    "lower": lambda s: to_text(s).lower(),
    "trunc": lambda n, s: to_text(s)[:n],
    "trimSuffix": lambda suf, s: to_text(s)[: -len(suf)] if suf and to_text(s).endswith(suf) else to_text(s),
    "replace": lambda old, new, s: to_text(s).replace(old, new),
    "join": lambda sep, items: sep.join(to_text(x) for x in (items or [])),
    "list": lambda *items: list(items),
    "dict": fn_dict,
    "hasKey": lambda d, k: isinstance(d, dict) and k in d,
    "empty": lambda v: not truthy(v),
    "toString": to_text,
    "int": lambda v: int(v or 0),
    "fail": fn_fail,
    "b64enc": lambda s: base64.b64encode(to_text(s).encode()).decode(),
}


class Renderer:
    def __init__(self, defines, root):
        self.defines = defines
        self.root = root

    def render(self, nodes, dot, scopes):
        out = []
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "action":
                value = self.statement(node[1], dot, scopes)
                if value is not None:
                    out.append(to_text(value))
            elif kind == "if":
                for cond, body in node[1]:
                    if cond is None or truthy(self.pipeline(tokens(cond), dot, scopes)):
                        out.append(self.render(body, dot, scopes + [{}]))
                        break
            elif kind == "with":
                value = self.pipeline(tokens(node[1]), dot, scopes)
                if truthy(value):
                    out.append(self.render(node[2], value, scopes + [{}]))
                else:
                    out.append(self.render(node[3], dot, scopes + [{}]))
            elif kind == "range":
                out.append(self.range(node, dot, scopes))
            elif kind == "define":
                pass
        return "".join(out)

    def range(self, node, dot, scopes):
        toks = tokens(node[1])
        names = []
        if any(t[0] == "decl" for t in toks):
            at = [t[0] for t in toks].index("decl")
            names = [t[1] for t in toks[:at] if t[0] == "var"]
            toks = toks[at + 1:]
        items = self.pipeline(toks, dot, scopes)
        if isinstance(items, dict):
            pairs = [(k, items[k]) for k in sorted(items)]
        elif isinstance(items, list):
            pairs = list(enumerate(items))
        elif items is None:
            pairs = []
        elif isinstance(items, int):
            pairs = [(i, i) for i in range(items)]
        else:
            raise TemplateError(f"cannot range over {items!r}")
        if not pairs:
            return self.render(node[3], dot, scopes + [{}])
        out = []
        for key, value in pairs:
            scope = {}
            if len(names) == 1:
                scope[names[0]] = value
            elif len(names) == 2:
                scope[names[0]] = key
                scope[names[1]] = value
            out.append(self.render(node[2], value, scopes + [scope]))
        return "".join(out)

    def statement(self, body, dot, scopes):
        toks = tokens(body)
        if len(toks) >= 2 and toks[0][0] == "var" and toks[1][0] in ("decl", "assign"):
            value = self.pipeline(toks[2:], dot, scopes)
            name = toks[0][1]
            if toks[1][0] == "decl":
                scopes[-1][name] = value
            else:
                for scope in reversed(scopes):
                    if name in scope:
                        scope[name] = value
                        break
                else:
                    raise TemplateError(f"{name} assigned before it was declared")
            return None
        return self.pipeline(toks, dot, scopes)

    def pipeline(self, toks, dot, scopes):
        commands = [[]]
        depth = 0
        for t in toks:
            if t == ("punct", "|") and depth == 0:
                commands.append([])
                continue
            if t == ("punct", "("):
                depth += 1
            elif t == ("punct", ")"):
                depth -= 1
            commands[-1].append(t)
        value = None
        for n, cmd in enumerate(commands):
            value = self.command(cmd, dot, scopes, piped=(value,) if n > 0 else ())
        return value

    def command(self, cmd, dot, scopes, piped):
        if not cmd:
            raise TemplateError("empty command")
        operands = self.operands(cmd, dot, scopes)
        head = cmd[0]
        if head[0] == "ident" and head[1] not in ("true", "false", "nil"):
            name = head[1]
            args = operands[1:] + list(piped)
            if name == "include":
                return self.include(*args)
            if name not in FUNCTIONS:
                raise TemplateError(f"function {name} is outside the supported subset")
            return FUNCTIONS[name](*args)
        if len(operands) != 1 or piped:
            raise TemplateError(f"cannot call a non-function: {cmd}")
        return operands[0]

    def operands(self, cmd, dot, scopes):
        values = []
        i = 0
        while i < len(cmd):
            kind, text = cmd[i]
            if kind == "punct" and text == "(":
                depth, j = 1, i + 1
                while depth:
                    if cmd[j] == ("punct", "("):
                        depth += 1
                    elif cmd[j] == ("punct", ")"):
                        depth -= 1
                    j += 1
                value = self.pipeline(cmd[i + 1:j - 1], dot, scopes)
                if j < len(cmd) and cmd[j][0] == "chain":
                    value = lookup(value, cmd[j][1])
                    j += 1
                values.append(value)
                i = j
                continue
            if kind == "str":
                values.append(json.loads(text))
            elif kind == "raw":
                values.append(text[1:-1])
            elif kind == "num":
                values.append(float(text) if "." in text else int(text))
            elif kind == "ident":
                values.append({"true": True, "false": False, "nil": None}.get(text, text))
            elif kind == "field":
                values.append(dot if text == "." else lookup(dot, text))
            elif kind == "var":
                name, _, path = text.partition(".")
                if name == "$":
                    base = self.root
                else:
                    for scope in reversed(scopes):
                        if name in scope:
                            base = scope[name]
                            break
                    else:
                        raise TemplateError(f"undefined variable {name}")
                values.append(lookup(base, "." + path) if path else base)
            else:
                raise TemplateError(f"unexpected {text!r}")
            i += 1
        return values

    def include(self, name, ctx):
        if name not in self.defines:
            raise TemplateError(f"no template named {name!r}")
        return self.render(self.defines[name], ctx, [{}])


def lookup(value, path):
    for part in path.strip(".").split("."):
        if value is None:
            return None
        if not isinstance(value, dict):
            raise TemplateError(f"cannot read .{part} of {value!r}")
        value = value.get(part)
    return value


def deep_merge(base, over):
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def set_path(values, dotted, value):
    keys = dotted.split(".")
    for k in keys[:-1]:
        values = values.setdefault(k, {})
    values[keys[-1]] = value


def render_chart(chart_dir, value_files=(), name="skein", namespace="default", set_strings=()):
    """Answers [(source path, rendered text)] for every manifest template, in file order."""
    with open(os.path.join(chart_dir, "Chart.yaml")) as f:
        chart = yaml.safe_load(f)
    with open(os.path.join(chart_dir, "values.yaml")) as f:
        values = yaml.safe_load(f) or {}
    for path in value_files:
        with open(path) as f:
            values = deep_merge(values, yaml.safe_load(f) or {})
    for item in set_strings:
        key, _, value = item.partition("=")
        set_path(values, key, value)
    root = {
        "Values": values,
        "Release": {"Name": name, "Namespace": namespace, "Service": "Helm"},
        "Chart": {"Name": chart["name"], "Version": chart["version"], "AppVersion": chart.get("appVersion", "")},
    }
    tdir = os.path.join(chart_dir, "templates")
    files = sorted(f for f in os.listdir(tdir) if f.endswith((".yaml", ".tpl")))
    trees = {}
    defines = {}
    for f in files:
        with open(os.path.join(tdir, f)) as fh:
            nodes, _ = parse(lex(fh.read()))
        trees[f] = nodes
        for node in nodes:
            if node[0] == "define":
                defines[node[1]] = node[2]
    renderer = Renderer(defines, root)
    out = []
    for f in files:
        if f.startswith("_"):
            continue
        text = renderer.render(trees[f], root, [{}])
        out.append((f"{chart['name']}/templates/{f}", text))
    return out


def manifests(rendered):
    """Every non-empty YAML document of the rendered templates, as (source, object)."""
    docs = []
    for source, text in rendered:
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append((source, doc))
    return docs


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("chart")
    p.add_argument("-f", "--values", action="append", default=[])
    p.add_argument("--name", default="skein")
    p.add_argument("--namespace", default="default")
    p.add_argument("--set-string", action="append", default=[])
    a = p.parse_args()
    try:
        rendered = render_chart(a.chart, a.values, a.name, a.namespace, a.set_string)
    except TemplateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for source, text in rendered:
        for doc in yaml.safe_load_all(text):
            if doc:
                sys.stdout.write(f"---\n# Source: {source}\n")
                sys.stdout.write(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
