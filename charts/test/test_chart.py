"""Tests of charts/isthmus, run by ./scripts/test-chart (pytest).

Renders the chart with the real Helm engine (helm-python-sdk embeds Helm's Go
library), lints it, validates every manifest against the Kubernetes 1.32
schemas (kubernetes-validate), checks that missing values fail with a message
naming them, and compares the proxy's RBAC with the policy files it enforces.
The CRD's CEL rules are evaluated with cel-python, and the CRD is applied to
the embedded API server (`isthmus apiserver`) with the
real kubectl, together with the IstioMulticluster examples of the docs.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import celpy
import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "isthmus"
KUBE_VERSION = "1.32.0"
RELEASE, NAMESPACE = "isthmus", "d8-istio"

BASE = {
    "cluster": {
        "uuid": "8d5f5d2e-0b6c-4f5e-9a1d-3c2b1a0f9e8d",
        "networkName": "network-a",
        "apiHost": "istio-api.k8s-a.example.com",
        "podCIDR": "10.111.0.0/16",
        "serviceCIDR": "10.222.0.0/16",
    },
    "ingress": {"metadata": {"host": "istio.k8s-a.example.com"}},
}

CUSTOM_POLICY = """\
rules:
  # Only this peer, only in team-a: its own ConfigMaps, by name.
  - apiGroups: [""]
    resources: [configmaps]
    resourceNames: [mesh-settings]
    verbs: ["*"]
    namespaces: [team-a]
    peers: [59c29bf0-8c3a-4b7e-9d6f-2a1b3c4d5e6f]
  - apiGroups: [gateway.networking.k8s.io]
    resources: [gateways, httproutes]
    verbs: [get, list, watch]
"""


def merged(*overrides: dict) -> dict:
    """BASE with overrides merged in (dicts recursively)."""
    def merge(into: dict, extra: dict) -> dict:
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = copy.deepcopy(value)
        return into
    result = copy.deepcopy(BASE)
    for override in overrides:
        merge(result, override)
    return result


# The default values and the variations every check runs on.
VARIATIONS = {
    "default": merged(),
    "ingress-off": merged({"ingress": {"enabled": False}, "networkPolicy": {"ingressFrom": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway-system"}}}]}}),
    "gateway-api": merged({
        "ingress": {"enabled": False},
        "gatewayAPI": {"enabled": True, "parentRefs": [{"name": "public", "namespace": "gateway-system", "sectionName": "https"}],
                       "backendCAConfigMap": "isthmus-serving-ca"},
        "proxy": {"tlsSecret": "isthmus-proxy-tls"}, "metadata": {"tlsSecret": "isthmus-metadata-tls"},
    }),
    "ha": merged({
        "proxy": {"replicas": 3}, "metadata": {"replicas": 3}, "controller": {"replicas": 2},
        "podAntiAffinity": "hard",
        "cluster": {"ingressGateways": ["203.0.113.10:15443", "203.0.113.11:15443"]},
    }),
    "custom-policies": merged({"policies": {"files": {"team-a.yaml": CUSTOM_POLICY}}}),
    "strict-hardened": merged({
        "policies": {"preset": "strict"},
        "proxy": {"tlsSecret": "isthmus-proxy-tls",
                  "clientAuth": {"enabled": True, "caSecret": "ingress-client-ca"}},
        "ingress": {"clientCertificateSecret": "d8-istio/ingress-client-cert"},
        "monitoring": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
        "image": {"digest": "sha256:" + "ab" * 32},
    }),
}

# Kinds served by CRDs that kubernetes-validate has no schema for; each is
# checked by its own test below instead.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "HTTPRoute", "BackendTLSPolicy"}


def render(values: dict) -> list[dict]:
    """Every manifest the chart renders for values, with its template path."""
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(values)
        rendered = chart.render(values=values, name=RELEASE, namespace=NAMESPACE)
    documents = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                document["__template"] = template
                documents.append(document)
    return documents


def of_kind(documents: list[dict], kind: str) -> list[dict]:
    return [d for d in documents if d["kind"] == kind]


def named(documents: list[dict], kind: str, name: str) -> dict:
    matches = [d for d in of_kind(documents, kind) if d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, got {len(matches)}"
    return matches[0]


def render_error(values: dict) -> str:
    with pytest.raises(helm.HelmError) as caught:
        render(values)
    return str(caught.value)


@pytest.fixture(scope="module", params=sorted(VARIATIONS))
def variation(request) -> tuple[str, dict, list[dict]]:
    values = VARIATIONS[request.param]
    return request.param, values, render(values)


# --- every variation ---------------------------------------------------------

def test_lint_is_clean(variation):
    name, values, _ = variation
    report = helm.lint(CHART, values=values, strict=True, namespace=NAMESPACE, kube_version="v" + KUBE_VERSION)
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert problems == [], f"{name}: helm lint --strict: {problems}"


def test_manifests_validate_against_kubernetes_schemas(variation):
    name, _, documents = variation
    assert documents
    for document in documents:
        manifest = {k: v for k, v in document.items() if k != "__template"}
        if manifest["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name}: {document['__template']}: {manifest['kind']} {manifest['metadata']['name']}: {error}")


def test_crd_validates_and_is_cluster_scoped_with_status_and_columns():
    with helm.Chart.load(CHART) as chart:
        crds = chart.crds
    assert [c["filename"] for c in crds] == ["isthmus/crds/istiomulticlusters.deckhouse.io.yaml"]
    crd = yaml.safe_load(crds[0]["data"])
    kubernetes_validate.validate(crd, KUBE_VERSION, strict=True)
    assert crd["spec"]["group"] == "deckhouse.io" and crd["spec"]["scope"] == "Cluster"
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Peer UUID"] == ".status.metadataCache.public.clusterUUID"


def test_every_pod_is_locked_down_and_probed(variation):
    name, _, documents = variation
    deployments = of_kind(documents, "Deployment")
    assert {d["metadata"]["name"] for d in deployments} == {"isthmus-proxy", "isthmus-metadata", "isthmus-controller"}
    for deployment in deployments:
        where = f"{name}: {deployment['metadata']['name']}"
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert pod["affinity"]["podAntiAffinity"], where
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", where
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", where
            assert container["resources"]["requests"] and container["resources"]["limits"]["memory"], where
            assert container["args"][0] in {"proxy", "metadata", "controller"}, where
            assert all(a.startswith("--") for a in container["args"][1:]), where
            assert f"--cluster-uuid={BASE['cluster']['uuid']}" in container["args"], where
            # Every component serves /metrics and its probes on the plain-HTTP admin port, named metrics.
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert ports.get("metrics") == 9090, where
            assert container["readinessProbe"]["httpGet"]["port"] == "metrics", where
            if container["args"][0] != "controller":
                assert "--admin-listen=0.0.0.0:9090" in container["args"], where


def test_network_policy_admits_only_the_serving_and_metrics_ports(variation):
    name, _, documents = variation
    policies = {p["metadata"]["name"]: p for p in of_kind(documents, "NetworkPolicy")}
    assert set(policies) == {"isthmus-proxy", "isthmus-metadata", "isthmus-controller"}, name
    ports = {n: sorted(port["port"] for rule in p["spec"]["ingress"] for port in rule["ports"]) for n, p in policies.items()}
    assert ports == {"isthmus-proxy": [8443, 9090], "isthmus-metadata": [8443, 9090], "isthmus-controller": [9090]}, name


# --- variations ---------------------------------------------------------------

def test_default_ingresses_carry_what_long_watches_need():
    documents = render(VARIATIONS["default"])
    api = named(documents, "Ingress", "isthmus-proxy")
    annotations = api["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/backend-protocol"] == "HTTPS"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert api["spec"]["rules"][0]["host"] == "istio-api.k8s-a.example.com"
    metadata = named(documents, "Ingress", "isthmus-metadata")
    assert metadata["spec"]["rules"][0]["host"] == "istio.k8s-a.example.com"
    assert metadata["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/metadata/"
    # No monitoring CRDs in a cluster that does not serve them (auto).
    assert not of_kind(documents, "ServiceMonitor") and not of_kind(documents, "PrometheusRule")
    budgets = {b["metadata"]["name"] for b in of_kind(documents, "PodDisruptionBudget")}
    assert budgets == {"isthmus-proxy", "isthmus-metadata"}, "2 replicas get a PDB, the single controller none"


def test_ingress_off_renders_no_ingress_and_no_route():
    documents = render(VARIATIONS["ingress-off"])
    assert not of_kind(documents, "Ingress") and not of_kind(documents, "HTTPRoute")
    assert of_kind(documents, "Service")


def test_gateway_api_routes_with_long_timeouts_and_backend_tls():
    documents = render(VARIATIONS["gateway-api"])
    assert not of_kind(documents, "Ingress")
    routes = {r["metadata"]["name"]: r for r in of_kind(documents, "HTTPRoute")}
    assert set(routes) == {"isthmus-proxy", "isthmus-metadata"}
    for route in routes.values():
        assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
        assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateway-system", "sectionName": "https"}]
        rule = route["spec"]["rules"][0]
        assert rule["timeouts"] == {"request": "3600s", "backendRequest": "3600s"}
        assert rule["backendRefs"] == [{"name": route["metadata"]["name"], "port": 443}]
    assert routes["isthmus-proxy"]["spec"]["hostnames"] == ["istio-api.k8s-a.example.com"]
    policies = of_kind(documents, "BackendTLSPolicy")
    assert {p["spec"]["targetRefs"][0]["name"] for p in policies} == set(routes)
    assert all(p["spec"]["validation"]["caCertificateRefs"][0]["name"] == "isthmus-serving-ca" for p in policies)
    proxy_args = named(documents, "Deployment", "isthmus-proxy")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--tls-cert=/etc/isthmus/tls/tls.crt" in proxy_args
    # Nothing in the release's own namespace is served to a peer.
    namespace = named(documents, "Deployment", "isthmus-proxy")["metadata"]["namespace"]
    assert f"--isthmus-namespace={namespace}" in proxy_args


def test_ha_spreads_replicas_and_budgets_disruptions():
    documents = render(VARIATIONS["ha"])
    budgets = {b["metadata"]["name"]: b["spec"] for b in of_kind(documents, "PodDisruptionBudget")}
    assert set(budgets) == {"isthmus-proxy", "isthmus-metadata", "isthmus-controller"}
    assert all(b["maxUnavailable"] == 1 for b in budgets.values())
    for deployment in of_kind(documents, "Deployment"):
        spec = deployment["spec"]
        terms = spec["template"]["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms[0]["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert named(documents, "Deployment", "isthmus-proxy")["spec"]["replicas"] == 3
    metadata_args = named(documents, "Deployment", "isthmus-metadata")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in metadata_args if a.startswith("--ingress-gateway=")] == [
        "--ingress-gateway=203.0.113.10:15443", "--ingress-gateway=203.0.113.11:15443"]
    # Gateways given: the metadata service needs no discovery RBAC.
    assert not [r for r in of_kind(documents, "ClusterRole") if r["metadata"]["name"] == "isthmus-metadata"]


def test_strict_hardened_wires_client_auth_tls_monitoring_and_alerts():
    documents = render(VARIATIONS["strict-hardened"])
    proxy = named(documents, "Deployment", "isthmus-proxy")["spec"]["template"]["spec"]["containers"][0]
    assert "--client-ca=/etc/isthmus/client-ca/ca.crt" in proxy["args"]
    assert "--client-subject=O=ingress-nginx:auth" in proxy["args"]
    assert proxy["image"] == "ghcr.io/isthmus/isthmus@sha256:" + "ab" * 32
    annotations = named(documents, "Ingress", "isthmus-proxy")["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-ssl-secret"] == "d8-istio/ingress-client-cert"
    monitors = of_kind(documents, "ServiceMonitor")
    assert {m["metadata"]["name"] for m in monitors} == {"isthmus-proxy", "isthmus-metadata", "isthmus-controller"}
    services = {s["metadata"]["name"]: s for s in of_kind(documents, "Service")}
    for monitor in monitors:
        service = services[monitor["metadata"]["name"]]
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    rules = of_kind(documents, "PrometheusRule")[0]["spec"]["groups"][0]["rules"]
    alerts = {r["alert"]: r for r in rules}
    assert {"IsthmusPeerMetadataFetchFailing", "IsthmusRemoteAPIHostDown", "IsthmusRemoteTokenExpiringSoon",
            "IsthmusProxyDenialBurst", "IsthmusProxyProtectedObjectRequested",
            "IsthmusProxyPeerThrottled", "IsthmusProxyShortRequestsSaturated"} <= set(alerts)
    assert "isthmus_proxy_requests_throttled_total" in alerts["IsthmusProxyPeerThrottled"]["expr"]
    for alert in alerts.values():
        assert re.search(r"isthmus_(proxy|controller)_[a-z_]+", alert["expr"]), alert["alert"]
        assert "{{ $labels." in alert["annotations"]["summary"], "Prometheus templates survive Helm"
    assert "172800" in alerts["IsthmusRemoteTokenExpiringSoon"]["expr"], "48 h by default"


# --- policies and RBAC --------------------------------------------------------

def test_chart_policies_are_the_repository_policies():
    """Helm cannot read outside the chart, so it carries a copy; it must not drift."""
    for relative in ["", "strict"]:
        source, copy_dir = ROOT / "policies" / relative, CHART / "policies" / relative
        names = sorted(p.name for p in source.glob("*.yaml"))
        assert names and names == sorted(p.name for p in copy_dir.glob("*.yaml")), \
            f"charts/isthmus/policies/{relative} differs from policies/{relative}: cp policies/{relative}/*.yaml there"
        for name in names:
            assert (source / name).read_bytes() == (copy_dir / name).read_bytes(), \
                f"charts/isthmus/policies/{relative}/{name} differs from policies/{relative}/{name}: copy it again"


def grants(rules: list[dict], namespace: str = "*") -> set[tuple]:
    """RBAC or policy rules as a set of single permissions."""
    result = set()
    for rule in rules:
        verbs = ["get", "list", "watch"] if rule["verbs"] == ["*"] else rule["verbs"]
        if "nonResourceURLs" in rule:
            result |= {("url", url, verb) for url in rule["nonResourceURLs"] for verb in verbs}
            continue
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for name in rule.get("resourceNames") or ["*"]:
                    result |= {(namespace, group, resource, name, verb) for verb in verbs}
    return result


def policy_grants(files: dict[str, str]) -> set[tuple]:
    """What the proxy allows, per policy file text (peers ignored: RBAC serves all peers)."""
    result = set()
    for text in files.values():
        for rule in yaml.safe_load(text)["rules"]:
            for namespace in rule.get("namespaces") or ["*"]:
                result |= grants([rule], namespace)
    return result


def proxy_rbac_grants(documents: list[dict]) -> set[tuple]:
    result = grants(named(documents, "ClusterRole", "isthmus-proxy")["rules"])
    for role in of_kind(documents, "Role"):
        if role["metadata"]["name"] == "isthmus-proxy":
            result |= grants(role["rules"], role["metadata"]["namespace"])
    bindings = [b for b in of_kind(documents, "ClusterRoleBinding") + of_kind(documents, "RoleBinding")
                if b["roleRef"]["name"] == "isthmus-proxy"]
    assert bindings and all(b["subjects"] == [{"kind": "ServiceAccount", "name": "isthmus-proxy", "namespace": NAMESPACE}]
                            for b in bindings)
    return result


@pytest.mark.parametrize("name, files", [
    ("default", {p.name: p.read_text() for p in (ROOT / "policies").glob("*.yaml")}),
    ("strict-hardened", {p.name: p.read_text() for p in (ROOT / "policies" / "strict").glob("*.yaml")}),
    ("custom-policies", {**{p.name: p.read_text() for p in (ROOT / "policies").glob("*.yaml")},
                         "team-a.yaml": CUSTOM_POLICY}),
])
def test_proxy_rbac_equals_the_policy(name, files):
    documents = render(VARIATIONS[name])
    assert proxy_rbac_grants(documents) == policy_grants(files)
    configmap = named(documents, "ConfigMap", "isthmus-policies")
    assert configmap["data"] == files
    assert {g[-1] for g in proxy_rbac_grants(documents)} <= {"get", "list", "watch"}


def test_secrets_are_readable_only_with_the_default_policy():
    default = proxy_rbac_grants(render(VARIATIONS["default"]))
    strict = proxy_rbac_grants(render(VARIATIONS["strict-hardened"]))
    assert ("*", "", "secrets", "*", "watch") in default
    assert not [g for g in strict if "secrets" in g]


def test_a_policy_file_can_be_removed_or_replaced_from_values():
    documents = render(merged({"policies": {"files": {"istio-reader.yaml": "", "discovery.yaml": CUSTOM_POLICY}}}))
    assert named(documents, "ConfigMap", "isthmus-policies")["data"] == {"discovery.yaml": CUSTOM_POLICY}
    assert proxy_rbac_grants(documents) == policy_grants({"x": CUSTOM_POLICY})


def metadata_args(documents: list[dict]) -> list[str]:
    return named(documents, "Deployment", "isthmus-metadata")["spec"]["template"]["spec"]["containers"][0]["args"]


def metadata_grants(documents: list[dict]) -> set[tuple]:
    """(namespace or "*", resource, resourceName or "*", verb) the metadata ServiceAccount is granted."""
    result = set()
    for kind in ("Role", "ClusterRole"):
        for role in of_kind(documents, kind):
            if role["metadata"]["name"] != "isthmus-metadata":
                continue
            namespace = role["metadata"].get("namespace", "*")
            for rule in role["rules"]:
                assert rule["apiGroups"] == [""], role
                result |= {(namespace, resource, name, verb) for resource in rule["resources"]
                           for name in rule.get("resourceNames", ["*"]) for verb in rule["verbs"]}
    return result


def test_metadata_reads_root_ca_and_gateways_through_the_api_with_exactly_that_rbac():
    documents = render(VARIATIONS["default"])
    args = metadata_args(documents)
    assert f"--root-ca-configmap={NAMESPACE}/istio-ca-root-cert" in args
    assert "--ingress-gateway-service=istio-system/istio-ingressgateway" in args
    assert not [a for a in args if a.startswith(("--root-ca=", "--ingress-gateway="))]
    # Informers only list and watch; by-name watches use a metadata.name field selector.
    assert metadata_grants(documents) == {
        (NAMESPACE, "configmaps", "istio-ca-root-cert", "list"), (NAMESPACE, "configmaps", "istio-ca-root-cert", "watch"),
        ("istio-system", "services", "istio-ingressgateway", "list"), ("istio-system", "services", "istio-ingressgateway", "watch"),
        ("istio-system", "pods", "*", "list"), ("istio-system", "pods", "*", "watch"),
        ("*", "nodes", "*", "list"), ("*", "nodes", "*", "watch"),
    }
    bindings = [b for b in of_kind(documents, "RoleBinding") + of_kind(documents, "ClusterRoleBinding")
                if b["metadata"]["name"] == "isthmus-metadata"]
    assert len(bindings) == 3
    assert all(b["subjects"] == [{"kind": "ServiceAccount", "name": "isthmus-metadata", "namespace": NAMESPACE}] for b in bindings)

    # Configured gateways: no discovery, so only the root CA ConfigMap.
    configured = render(merged({"cluster": {"ingressGateways": ["203.0.113.10:15443"]}}))
    assert not [a for a in metadata_args(configured) if a.startswith("--ingress-gateway-service")]
    assert {(n, r) for n, r, _, _ in metadata_grants(configured)} == {(NAMESPACE, "configmaps")}

    # Istio in the release's namespace: one Role holds every rule.
    shared = render(merged({"istio": {"namespace": NAMESPACE, "ingressGatewayService": "ingressgateway"}}))
    assert len([r for r in of_kind(shared, "Role") if r["metadata"]["name"] == "isthmus-metadata"]) == 1
    assert (NAMESPACE, "services", "ingressgateway", "watch") in metadata_grants(shared)
    assert f"--ingress-gateway-service={NAMESPACE}/ingressgateway" in metadata_args(shared)


def test_metadata_args_are_flags_of_isthmus_metadata(variation):
    name, _, documents = variation
    help_text = subprocess.run([isthmus_binary(), "metadata", "--help"], capture_output=True, text=True, check=True).stdout
    known = set(re.findall(r"(--[a-z0-9-]+)", help_text))
    for arg in metadata_args(documents)[1:]:
        assert arg.split("=", 1)[0] in known, f"{name}: {arg} is not an `isthmus metadata` flag"


def test_controller_rbac_is_limited_to_its_objects():
    documents = render(VARIATIONS["default"])
    cluster_rules = named(documents, "ClusterRole", "isthmus-controller")["rules"]
    assert {r for rule in cluster_rules for r in rule["resources"]} == {"istiomulticlusters", "istiomulticlusters/status"}
    own = [r for r in of_kind(documents, "Role") if r["metadata"]["name"] == "isthmus-controller"]
    by_namespace = {r["metadata"]["namespace"]: r["rules"] for r in own}
    assert set(by_namespace) == {NAMESPACE, "istio-system"}
    secret_rules = [r for r in by_namespace[NAMESPACE] if r["resources"] == ["secrets"] and "update" in r["verbs"]]
    assert secret_rules[0]["resourceNames"] == ["isthmus-cluster-key", "isthmus-trusted-peers"]
    assert not [r for r in by_namespace[NAMESPACE] if "delete" in r["verbs"]]


# --- required values ------------------------------------------------------------

@pytest.mark.parametrize("field", ["uuid", "networkName", "apiHost", "podCIDR", "serviceCIDR"])
def test_a_missing_cluster_value_is_named(field):
    values = merged()
    del values["cluster"][field]
    message = render_error(values)
    assert f"cluster.{field} is required" in message


@pytest.mark.parametrize("override, expected", [
    ({"cluster": {"uuid": "Not-A-UUID"}}, "/cluster/uuid"),
    ({"cluster": {"apiHost": "https://istio-api.example.com"}}, "/cluster/apiHost"),
    ({"proxy": {"replicas": "two"}}, "/proxy/replicas"),
    ({"policies": {"preset": "permissive"}}, "/policies/preset"),
    ({"ingress": {"timeoutSeconds": 60}}, "/ingress/timeoutSeconds"),
    ({"ingress": {"metadata": {"host": ""}}}, "ingress.metadata.host is required"),
    ({"gatewayAPI": {"enabled": True}}, "gatewayAPI.parentRefs is required"),
    ({"proxy": {"clientAuth": {"enabled": True}}}, "proxy.clientAuth.caSecret is required"),
    ({"ingress": {"clientCertificateSecret": "no-namespace"}}, "ingress.clientCertificateSecret must be NAMESPACE/NAME"),
    ({"policies": {"preset": "none"}}, "no policy file left"),
    ({"policies": {"files": {"../escape.yaml": "rules: []"}}}, "must be a file name ending in .yaml"),
])
def test_a_bad_value_is_refused_with_its_name(override, expected):
    assert expected in render_error(merged(override))


def test_default_values_alone_ask_for_the_cluster_uuid_first():
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmError, match=r"cluster\.uuid is required"):
            chart.render(values=None, name=RELEASE, namespace=NAMESPACE)


# --- the CRD, served ------------------------------------------------------------

def doc_examples() -> list[dict]:
    """The IstioMulticluster objects shown in docs/operations.md."""
    text = (ROOT / "docs" / "operations.md").read_text()
    objects = []
    for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
        objects += [d for d in yaml.safe_load_all(block) if d and d.get("kind") == "IstioMulticluster"]
    return objects


def test_doc_examples_cover_both_spec_forms_and_match_the_crd_schema():
    examples = doc_examples()
    assert {"metadataEndpoint"} in [set(e["spec"]) for e in examples]
    assert any("metadata" in e["spec"] and {"endpoint", "ca"} <= set(e["spec"]["metadata"]) for e in examples)
    schema = yaml.safe_load((CHART / "crds" / "istiomulticlusters.deckhouse.io.yaml").read_text())
    open_api = schema["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for example in examples:
        jsonschema.validate(example, open_api)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"spec": {"metadataEndpoint": "istio.k8s-b.example.com/metadata/"}}, open_api)


def test_crd_validation_rules_accept_the_doc_examples_and_refuse_bad_specs():
    """The spec's CEL rules (x-kubernetes-validations), evaluated as the API server would."""
    crd = yaml.safe_load((CHART / "crds" / "istiomulticlusters.deckhouse.io.yaml").read_text())
    spec_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    environment = celpy.Environment()
    programs = [(r["message"], environment.program(environment.compile(r["rule"])))
                for r in spec_schema["x-kubernetes-validations"]]

    def refusals(spec: dict) -> list[str]:
        return [message for message, program in programs if not program.evaluate({"self": celpy.json_to_cel(spec)})]

    for example in doc_examples():
        assert refusals(example["spec"]) == [], example["metadata"]["name"]
    endpoint = "https://istio.k8s-b.example.com/metadata/"
    assert refusals({"metadataEndpoint": endpoint, "metadata": {"endpoint": endpoint}}) == []
    assert refusals({"enableIngressGateway": True}) == ["give spec.metadataEndpoint or spec.metadata.endpoint"]
    assert refusals({"metadataEndpoint": endpoint, "metadata": {"endpoint": "https://other.example.com/metadata/"}}) == [
        "spec.metadataEndpoint and spec.metadata.endpoint differ; give one of them"]


def isthmus_binary() -> Path:
    built = os.environ.get("ISTHMUS_BIN") or str(ROOT / ".build" / "debug" / "isthmus")
    assert Path(built).exists(), f"{built} is missing: run swift build first (./scripts/test does)"
    return Path(built)


def test_crd_and_doc_examples_apply_to_the_embedded_api_server(tmp_path):
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing: ./scripts/install-deps installs it"
    kubeconfig = tmp_path / "kubeconfig"
    server = subprocess.Popen([isthmus_binary(), "apiserver", "--listen", "127.0.0.1:0", "--token", "chart-test",
                               "--cert-dir", tmp_path / "pki", "--kubeconfig-out", kubeconfig],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not kubeconfig.exists():
            assert server.poll() is None, server.stderr.read().decode()
            assert time.monotonic() < deadline, "isthmus apiserver wrote no kubeconfig within 60 s"
            time.sleep(0.05)

        def run(*args: str, stdin: str | None = None) -> str:
            result = subprocess.run([kubectl, "--kubeconfig", kubeconfig, "--cache-dir", tmp_path / "cache", *args],
                                    input=stdin, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stdout}{result.stderr}"
            return result.stdout

        run("apply", "-f", str(CHART / "crds"))
        run("wait", "--for=condition=Established", "--timeout=60s", "crd/istiomulticlusters.deckhouse.io")
        examples = doc_examples()
        run("apply", "-f", "-", stdin="\n---\n".join(yaml.safe_dump(e) for e in examples))
        listed = run("get", "istiomulticlusters", "-o", "name")
        for example in examples:
            assert f"istiomulticluster.deckhouse.io/{example['metadata']['name']}" in listed
        # Status is a subresource: the controller's write, as kubectl --subresource does it.
        name = examples[0]["metadata"]["name"]
        run("patch", "istiomulticluster", name, "--subresource=status", "--type=merge", "-p",
            '{"status":{"metadataCache":{"public":{"clusterUUID":"59c29bf0-8c3a-4b7e-9d6f-2a1b3c4d5e6f"}},'
            '"conditions":[{"type":"Ready","status":"True","reason":"Linked","message":"ok",'
            '"lastTransitionTime":"2026-01-01T00:00:00Z"}]}}')
        # The printer columns' JSONPaths pick the values out of a served object. (The embedded
        # server's Table responses show NAME and AGE only, so read them through custom-columns.)
        crd = yaml.safe_load((CHART / "crds" / "istiomulticlusters.deckhouse.io.yaml").read_text())
        columns = {c["name"]: c["jsonPath"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}
        shown = run("get", "istiomulticluster", name, "--no-headers",
                    f"-o=custom-columns=R:{columns['Ready']},P:{columns['Peer UUID']}")
        assert shown.split() == ["True", "59c29bf0-8c3a-4b7e-9d6f-2a1b3c4d5e6f"], shown
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


# --- the docs' values snippets -------------------------------------------------

def doc_values(doc: str, first_line: str) -> dict:
    """The ```yaml block of docs/<doc> whose first line is first_line."""
    text = (ROOT / "docs" / doc).read_text()
    found = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if b.startswith(first_line + "\n")]
    assert len(found) == 1, f"docs/{doc}: expected one yaml block starting {first_line!r}"
    return yaml.safe_load(found[0])


def test_the_operations_guide_values_install_as_shown():
    values = doc_values("operations.md", "# values-a.yaml")
    documents = render(values)
    report = helm.lint(CHART, values=values, strict=True, namespace=NAMESPACE, kube_version="v" + KUBE_VERSION)
    assert not report["errors"] and not [m for m in report["messages"] if m["severity"] >= 2]
    assert of_kind(documents, "PrometheusRule"), "the guide turns the alerts on"
    assert named(documents, "Ingress", "isthmus-metadata")["spec"]["rules"][0]["host"] == values["ingress"]["metadata"]["host"]


def test_the_policies_guide_extension_reaches_policy_and_rbac():
    values = merged(doc_values("policies.md", "# values.yaml"))
    documents = render(values)
    assert "gateway-api.yaml" in named(documents, "ConfigMap", "isthmus-policies")["data"]
    assert ("*", "gateway.networking.k8s.io", "httproutes", "*", "watch") in proxy_rbac_grants(documents)
