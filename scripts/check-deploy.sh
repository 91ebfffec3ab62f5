#!/usr/bin/env bash
# Every deployment artefact checked by a real validator (docs/DEPLOY.md, "What checks what"):
#   Kubernetes   each overlay rendered by `kubectl kustomize`, validated by kubernetes-validate
#                (--strict), and the partition split the pods compute from their ordinals run;
#   compose      the compose-spec schema (check-jsonschema) and `podman-compose config`, its
#                Prometheus configuration by promtool;
#   AWS          cfn-lint on every CloudFormation template, each environment's parameters
#                against the template's declared ones;
#   CI/CD        the GitHub workflow schema (check-jsonschema) and zizmor --offline; deny.toml
#                by cargo deny (licences, bans, sources).
# The Python validators are installed, pinned, into a virtual environment under target/ on the
# first run (PyPI). Nothing here needs a network beyond that install.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${MARQUEE_DEPLOY_VENV:-target/deploy-venv}
stamp="$venv/.installed-2"
if [ ! -f "$stamp" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    kubernetes-validate==1.37.0 check-jsonschema==0.39.0 zizmor==1.33.1 \
    podman-compose==1.6.0 cfn-lint==1.58.0 pyyaml==6.0.4
  touch "$stamp"
fi
bin="$venv/bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== Kubernetes"
if command -v kubectl >/dev/null 2>&1; then
  for overlay in deploy/kubernetes/overlays/*/; do
    name=$(basename "$overlay")
    kubectl kustomize "$overlay" >"$work/$name.yaml"
    "$bin/kubernetes-validate" --strict --quiet "$work/$name.yaml"
    echo "$name: $(grep -c '^kind:' "$work/$name.yaml") objects valid"
  done
  # The pods' own script, run for each ordinal of the production overlay: the ranges must
  # cover every partition once.
  "$bin/python" - "$work/production.yaml" <<'PY'
import subprocess, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "StatefulSet"]
spec = docs[0]["spec"]
container = spec["template"]["spec"]["containers"][0]
env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
replicas, partitions = spec["replicas"], int(env["MARQUEE_PARTITIONS"])
assert int(env["MARQUEE_REPLICAS"]) == replicas, "MARQUEE_REPLICAS differs from replicas"
owned = []
for ordinal in range(replicas):
    script = container["args"][0].replace("exec /usr/local/bin/marquee serve", 'echo "$MARQUEE_OWNED_PARTITIONS"')
    out = subprocess.run(["sh", "-c", script], env={**env, "HOSTNAME": f"marquee-{ordinal}"},
                         capture_output=True, text=True, check=True).stdout.strip()
    first, last = map(int, out.split("-"))
    owned += range(first, last + 1)
assert owned == list(range(partitions)), f"partitions owned: {owned}"
print(f"production: {replicas} pods own partitions 0-{partitions - 1}, each once")
PY
else
  echo "kubectl (for its kustomize) not found: the base manifests alone are validated" >&2
  "$bin/kubernetes-validate" --strict --quiet deploy/kubernetes/base/{statefulset,services,pdb}.yaml
fi

echo "== compose"
"$bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose.yaml
"$bin/podman-compose" -f deploy/compose.yaml config >/dev/null
cp deploy/compose/prometheus.yml deploy/prometheus/alerts.yml "$work/"
if command -v promtool >/dev/null 2>&1; then
  promtool check config "$work/prometheus.yml" >/dev/null
  echo "compose's Prometheus configuration and rules: valid"
fi

echo "== AWS"
"$bin/cfn-lint" deploy/aws/*.yaml
"$bin/python" - <<'PY'
import glob, json, yaml
class Loader(yaml.SafeLoader):
    pass
Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
declared = yaml.load(open("deploy/aws/compute.yaml"), Loader=Loader)["Parameters"]
required = {name for name, p in declared.items() if "Default" not in p}
for path in sorted(glob.glob("deploy/aws/parameters/*.json")):
    given = {p["ParameterKey"] for p in json.load(open(path))}
    assert given <= set(declared), f"{path}: unknown {sorted(given - set(declared))}"
    assert required <= given, f"{path}: missing {sorted(required - given)}"
print("templates valid; each environment's parameters declared and complete")
PY

echo "== CI/CD"
"$bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
"$bin/zizmor" --offline --quiet .github/workflows/
# The dependency policy (deny.toml), as CI's `dependencies` job runs it, without the advisories:
# their database is fetched from GitHub, which this machine cannot reach. cargo-deny is built
# once into the target directory's tools (about 3 minutes on 2 cores).
tools="${CARGO_TARGET_DIR:-target}/tools"
if [ ! -x "$tools/bin/cargo-deny" ]; then
  env -u CARGO_TARGET_DIR cargo install --quiet --locked cargo-deny --version 0.20.2 --root "$tools"
fi
"$tools/bin/cargo-deny" --log-level error check licenses bans sources
echo "deny.toml: licences, bans and sources pass"
