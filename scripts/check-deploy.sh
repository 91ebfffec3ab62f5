#!/usr/bin/env bash
# Every deployment artefact checked by a real validator (docs/DEPLOY.md, "What checks what"):
#   Kubernetes   each overlay rendered by `kubectl kustomize`, validated by kubernetes-validate
#                (--strict), and the partition split the pods compute from their ordinals run;
#   compose      the compose-spec schema (check-jsonschema) and `podman-compose config`, its
#                Prometheus configuration by promtool;
#   AWS          cfn-lint on every CloudFormation template, each environment's parameters
#                against the template's declared ones, the cluster's node lists and the peer
#                list its boot script writes;
#   CI/CD        the GitHub workflow schema (check-jsonschema) and zizmor --offline; deny.toml
#                by cargo deny (licences, bans, sources); npm audit of the npm projects where
#                the registry answers it.
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
  # cover every partition once, and every pod's peer list name every pod with its range.
  "$bin/python" - "$work/production.yaml" "$work" <<'PY'
import subprocess, sys, tomllib, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "StatefulSet"]
spec = docs[0]["spec"]
container = spec["template"]["spec"]["containers"][0]
env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
replicas, partitions = spec["replicas"], int(env["MARQUEE_PARTITIONS"])
assert int(env["MARQUEE_REPLICAS"]) == replicas, "MARQUEE_REPLICAS differs from replicas"
owned = []
ranges = []
for ordinal in range(replicas):
    peers_file = f"{sys.argv[2]}/peers-{ordinal}.toml"
    script = (container["args"][0]
              .replace("/tmp/marquee.toml", peers_file)
              .replace("exec /usr/local/bin/marquee serve", 'echo "$MARQUEE_OWNED_PARTITIONS $MARQUEE_CONFIG"'))
    out = subprocess.run(["sh", "-c", script], env={**env, "HOSTNAME": f"marquee-{ordinal}"},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[1] == peers_file, out
    ranges.append(out[0])
    first, last = map(int, out[0].split("-"))
    owned += range(first, last + 1)
assert owned == list(range(partitions)), f"partitions owned: {owned}"
expected = [(f"http://marquee-{k}.marquee-peers:8080", r) for k, r in enumerate(ranges)]
for ordinal in range(replicas):
    peers = tomllib.load(open(f"{sys.argv[2]}/peers-{ordinal}.toml", "rb"))["cluster"]["peers"]
    assert [(p["address"], p["partitions"]) for p in peers] == expected, f"pod {ordinal}'s peers"
print(f"production: {replicas} pods own partitions 0-{partitions - 1}, each once, and name each other")
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
"$bin/python" - "$work" <<'PY'
import glob, ipaddress, json, re, subprocess, sys, tomllib, yaml
work = sys.argv[1]
class Loader(yaml.SafeLoader):
    pass
def tagged(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}
Loader.add_multi_constructor("!", tagged)
def template(name):
    return yaml.load(open(f"deploy/aws/{name}.yaml"), Loader=Loader)
# Each environment's parameters (parameters/ENV.json for compute.yaml, parameters/cluster-ENV.json
# for cluster.yaml) are declared by the template and cover its required ones.
for path in sorted(glob.glob("deploy/aws/parameters/*.json")):
    name = "cluster" if path.split("/")[-1].startswith("cluster-") else "compute"
    declared = template(name)["Parameters"]
    required = {key for key, p in declared.items() if "Default" not in p}
    given = {p["ParameterKey"]: p["ParameterValue"] for p in json.load(open(path))}
    assert set(given) <= set(declared), f"{path}: unknown {sorted(set(given) - set(declared))}"
    assert required <= set(given), f"{path}: missing {sorted(required - set(given))}"

# cluster.yaml: with its defaults and with each environment's values, the node lists agree, the
# ranges cover the partitions exactly once, each address lies in its zone's private subnet
# (network.yaml's split of the VPC), and the peer list the boot script writes is the same TOML
# for every node but its own partitions.
cluster = template("cluster")
network = template("network")
vpc = ipaddress.ip_network(network["Parameters"]["VpcCidr"]["Default"])
private = list(vpc.subnets(new_prefix=vpc.prefixlen + 4))[2:4]
resources = cluster["Resources"]
loop = resources["Fn::ForEach::Nodes"]
script = loop[2]["Template${Id}"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Sub"][0]
block = script[script.index("{\n"):script.index("} >/srv/marquee/marquee.toml")] + "}"
zones = {int(k): v["Index"] for k, v in cluster["Mappings"]["NodeZone"].items()}
environments = [("defaults", {})] + [
    (path, {p["ParameterKey"]: p["ParameterValue"] for p in json.load(open(path))})
    for path in sorted(glob.glob("deploy/aws/parameters/cluster-*.json"))
]
for label, given in environments:
    value = lambda key: str(given.get(key, cluster["Parameters"][key].get("Default")))
    ids, addresses, ranges = (value(k).split(",") for k in ("NodeIds", "NodeAddresses", "NodePartitions"))
    partitions = int(value("Partitions"))
    assert ids == [str(n) for n in range(len(ids))] and len(ids) <= len(zones), f"{label}: NodeIds"
    assert len(addresses) == len(ids) == len(ranges), f"{label}: one address and range per node"
    covered = []
    for range_ in ranges:
        first, last = map(int, re.fullmatch(r"(\d+)-(\d+)", range_).groups())
        covered += range(first, last + 1)
    assert sorted(covered) == list(range(partitions)), f"{label}: ranges must cover 0-{partitions - 1} once"
    for node, address in enumerate(addresses):
        subnet = private[zones[node]]
        assert ipaddress.ip_address(address) in subnet, f"{label}: node {node}'s {address} not in {subnet}"
    for node in range(len(ids)):
        shell = block.replace("${Owned}", ranges[node]).replace("${Addresses}", ",".join(addresses)).replace("${Ranges}", ",".join(ranges))
        text = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, check=True).stdout
        written = tomllib.loads(text)["cluster"]
        assert written["partitions"] == ranges[node], label
        assert [(p["address"], p["partitions"]) for p in written["peers"]] == [
            (f"http://{a}:8080", r) for a, r in zip(addresses, ranges)
        ], f"{label}: node {node}'s peers"
print("templates valid; each environment's parameters declared and complete; the cluster's nodes, ranges, addresses and peer lists agree")
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
# The Arroyo UDFs' workspace (Arrow 51 and its tree), under the same policy.
"$tools/bin/cargo-deny" --manifest-path integrations/arroyo/Cargo.toml --log-level error \
  check licenses bans sources
echo "deny.toml: licences, bans and sources pass (the node's workspace and the UDFs')"
# npm's advisories for the two npm projects (their lockfiles; nothing is installed), where the
# registry answers the audit endpoint. A registry that does not (a mirror answering 405, no
# network) is reported, not failed: CI's `dependencies` job runs the same audit against npmjs.
command -v npm >/dev/null || { echo "check-deploy.sh: npm is missing (scripts/setup.sh installs it)" >&2; exit 1; }
for project in sdks/typescript crates/api/web; do
  if audit=$(cd "$project" && npm audit --audit-level=high 2>&1); then
    echo "npm audit ($project): $(tail -n 1 <<<"$audit")"
  elif grep -qE 'audit endpoint returned an error|ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN' <<<"$audit"; then
    why=$(grep -m 1 -oE '[0-9]{3} [A-Za-z ]+ - [A-Z]+ [^ ]+|ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN' <<<"$audit" || true)
    echo "npm audit ($project): not run here, the registry does not answer audits ($why)"
  else
    printf '%s\n' "$audit"
    echo "npm audit ($project): advisories of high severity or above" >&2
    exit 1
  fi
done
