#!/usr/bin/env python3
"""Checks everything under deploy/ that no Rust test reaches:

- the Helm chart renders (deploy/tools/helm_render.py) in single and split mode, with a
  chart-made and an existing Secret, and refuses values it cannot work with;
- every rendered object validates against the Kubernetes JSON schemas (kubernetes-validate,
  strict: unknown fields are errors) for the oldest and newest Kubernetes versions we claim;
  the ServiceMonitor (a prometheus-operator CRD, whose schema that package lacks) gets a
  structural check;
- deploy/k8s/*.yaml are exactly what the chart renders (`--write` regenerates them);
- deploy/compose.yaml: every dependency, volume and required secret is declared;
- every metric the alert rules and the dashboard use is one Skein exports (named in the code).

`promtool check rules` / `promtool test rules` run from scripts/test beside this.
Run: python3 deploy/tools/check.py [--write]
"""

import json
import os
import re
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import helm_render  # noqa: E402

CHART = os.path.join(ROOT, "deploy/helm/skein")
KUBERNETES_VERSIONS = ["1.29.0", "1.35.0"]
SECRETS = [
    "secret.SKEIN_DATABASE_URL=postgres://skein:pw@postgres:5432/skein",
    "secret.SKEIN_REDIS_URL=redis://redis:6379",
    "secret.SKEIN_JWT_SECRET=0123456789abcdef0123456789abcdef",
    "secret.SKEIN_METRICS_TOKEN=scrape-token-0123456789",
]
# (name, value files, --set-string values): the shapes an operator installs.
CASES = [
    ("single, chart-made Secret", [], SECRETS),
    ("single, existing Secret, ingress, ServiceMonitor", [],
     ["existingSecret=skein-env", "ingress.enabled=true", "ingress.tlsSecretName=skein-tls",
      "serviceMonitor.enabled=true"]),
    ("split", ["values-split.yaml"],
     SECRETS + ["secret.SKEIN_SERVICES__INTERNAL_TOKEN=internal-token-0123456789abcdef0123"]),
    ("split, existing Secret", ["values-split.yaml"], ["existingSecret=skein-env"]),
]
# The plain manifests in deploy/k8s: rendered from the chart with these values.
PLAIN = {
    "deploy/k8s/skein.yaml": ([os.path.join(ROOT, "deploy/k8s/values.yaml")], []),
    "deploy/k8s/skein-split.yaml": ([os.path.join(ROOT, "deploy/k8s/values.yaml"),
                                     os.path.join(ROOT, "deploy/k8s/values-split.yaml")], []),
}

failures = []


def fail(message):
    failures.append(message)
    print(f"FAIL {message}")


def render(files, sets):
    files = [f if os.path.isabs(f) else os.path.join(CHART, f) for f in files]
    return helm_render.manifests(helm_render.render_chart(CHART, files, "skein", "skein", sets))


def check_service_monitor(obj, where):
    spec = obj.get("spec", {})
    if obj.get("apiVersion") != "monitoring.coreos.com/v1":
        fail(f"{where}: ServiceMonitor apiVersion")
    if not spec.get("selector", {}).get("matchLabels"):
        fail(f"{where}: ServiceMonitor has no selector")
    for ep in spec.get("endpoints", []):
        allowed = {"port", "path", "interval", "bearerTokenSecret", "scheme", "scrapeTimeout"}
        if set(ep) - allowed:
            fail(f"{where}: unknown ServiceMonitor endpoint fields {set(ep) - allowed}")
        secret = ep.get("bearerTokenSecret", {})
        if set(secret) != {"name", "key"}:
            fail(f"{where}: bearerTokenSecret needs name and key")


def validate(docs, case):
    import kubernetes_validate

    kinds = {}
    for source, obj in docs:
        kind = obj.get("kind")
        kinds[kind] = kinds.get(kind, 0) + 1
        where = f"{case}: {source} {kind}/{obj.get('metadata', {}).get('name')}"
        if kind == "ServiceMonitor":
            check_service_monitor(obj, where)
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except Exception as e:  # the package raises several error types
                fail(f"{where} on Kubernetes {version}: {str(e).splitlines()[0]}")
    return kinds


def check_chart():
    for case, files, sets in CASES:
        docs = render(files, sets)
        kinds = validate(docs, case)
        names = [(o["kind"], o["metadata"]["name"]) for _, o in docs]
        if len(names) != len(set(names)):
            fail(f"{case}: two objects share a kind and name")
        deployments = [o for _, o in docs if o["kind"] == "Deployment"]
        split = "split" in case
        if len(deployments) != (2 if split else 1):
            fail(f"{case}: {len(deployments)} Deployments")
        for d in deployments:
            c = d["spec"]["template"]["spec"]["containers"][0]
            if c["livenessProbe"]["httpGet"]["path"] != "/healthz" or c["readinessProbe"]["httpGet"]["path"] != "/readyz":
                fail(f"{case}: probes")
            if not c.get("resources", {}).get("requests"):
                fail(f"{case}: no resource requests")
            env = {e["name"]: e.get("value") for e in c["env"]}
            if split and c["args"][2] == "relay" and env.get("SKEIN_SERVICES__USER_URL") != "http://skein-core-internal:3001":
                fail(f"{case}: the relay does not reach the User service: {env}")
        secret_names = {c["envFrom"][0]["secretRef"]["name"] for c in
                        (d["spec"]["template"]["spec"]["containers"][0] for d in deployments)}
        expected = "skein-env" if "existing" in case else "skein"
        if secret_names != {expected}:
            fail(f"{case}: pods read {secret_names}, not {expected}")
        if ("existing" in case) == ("Secret" in kinds):
            fail(f"{case}: a Secret {'was' if 'Secret' in kinds else 'was not'} rendered")
        for needed in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "Job", "Service"):
            if needed not in kinds:
                fail(f"{case}: no {needed}")
        print(f"ok   {case}: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    # Values the chart must refuse, with the reason.
    for sets, files, expect in [
        ([], [], "SKEIN_DATABASE_URL"),
        (SECRETS, ["values-split.yaml"], "INTERNAL_TOKEN"),
    ]:
        try:
            render(files, sets)
            fail(f"rendered without {expect}")
        except helm_render.TemplateError as e:
            if expect not in str(e):
                fail(f"refused for another reason: {e}")
    print("ok   the chart refuses a missing database URL and a split without an internal token")


def plain_text(files, sets):
    docs = helm_render.manifests(helm_render.render_chart(CHART, files, "skein", "skein", sets))
    out = ["# Generated from deploy/helm/skein by `python3 deploy/tools/check.py --write`;\n"
           "# edit the chart (or deploy/k8s/values*.yaml), not this file.\n"]
    for source, obj in docs:
        out.append(f"---\n# Source: {source}\n")
        out.append(yaml.safe_dump(obj, sort_keys=False, default_flow_style=False))
    return "".join(out)


def check_plain(write):
    for path, (files, sets) in PLAIN.items():
        text = plain_text(files, sets)
        full = os.path.join(ROOT, path)
        if write:
            with open(full, "w") as f:
                f.write(text)
            print(f"wrote {path}")
            continue
        current = open(full).read() if os.path.exists(full) else ""
        if current != text:
            fail(f"{path} is not what the chart renders: run python3 deploy/tools/check.py --write")
        else:
            docs = [(path, d) for d in yaml.safe_load_all(text) if d]
            validate(docs, path)
            print(f"ok   {path}: up to date with the chart, {len(docs)} objects valid")


def check_compose():
    path = os.path.join(ROOT, "deploy/compose.yaml")
    text = open(path).read()
    compose = yaml.safe_load(text)
    services = compose["services"]
    env_example = open(os.path.join(ROOT, "deploy/.env.example")).read()
    defined = set(re.findall(r"^([A-Z0-9_]+)=", env_example, re.M))
    for name, svc in services.items():
        for dep in (svc.get("depends_on") or {}):
            if dep not in services:
                fail(f"compose: {name} depends on unknown {dep}")
        for vol in svc.get("volumes") or []:
            source = vol.split(":")[0]
            if not source.startswith(".") and source not in (compose.get("volumes") or {}):
                fail(f"compose: {name} uses undeclared volume {source}")
        if "healthcheck" not in svc and name not in ("minio-bucket",) and not name.startswith("skein"):
            fail(f"compose: {name} has no healthcheck")
    for var in set(re.findall(r"\$\{([A-Z0-9_]+):\?", text)):
        if var not in defined:
            fail(f"compose: required {var} is missing from deploy/.env.example")
    print(f"ok   deploy/compose.yaml: {len(services)} services; dependencies, volumes and secrets declared")


def exported_metrics():
    """Every metric name the Rust code writes."""
    names = set()
    for base, _, files in os.walk(os.path.join(ROOT, "crates")):
        for f in files:
            if f.endswith(".rs") and "/tests" not in base:
                text = open(os.path.join(base, f)).read()
                names.update(re.findall(r'"((?:skein|process)_[a-z_]+)"', text))
    return names


def used_metrics(expr):
    return set(re.findall(r"\b((?:skein|process)_[a-z_]+?)(?:_bucket|_count|_sum)?\b(?=[{\[\s)]|$)", expr))


def check_monitoring():
    exported = exported_metrics()
    rules = yaml.safe_load(open(os.path.join(ROOT, "deploy/monitoring/alerts.yaml")))
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dashboard = json.load(open(os.path.join(ROOT, "deploy/monitoring/grafana-dashboard.json")))
    for panel in dashboard["panels"]:
        exprs += [t["expr"] for t in panel.get("targets", [])]
    missing = set()
    for expr in exprs:
        for name in used_metrics(expr):
            if name not in exported and not name.startswith(("skein_disk", "process_")):
                missing.add(name)
    for name in sorted(missing):
        fail(f"monitoring uses {name}, which Skein does not export")
    print(f"ok   alert rules and dashboard: {len(exprs)} expressions, every skein_* metric exported")


def main():
    write = "--write" in sys.argv
    if write:
        check_plain(True)
        return 0
    check_chart()
    check_plain(False)
    check_compose()
    check_monitoring()
    if failures:
        print(f"\n{len(failures)} deploy check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
