"""The OpenAPI v3 schemas as kubectl uses them: explain, and client-side apply patches.

For every kind, a manifest is applied, changed in the fields people change (lists
merged by key, maps, nested objects, unmodelled fields such as volumes), and applied
again: kubectl must compute its strategic merge patch from the schema without the
"error calculating patch from openapi v3 spec" warning, and the result must be what
the new manifest says.
"""

from __future__ import annotations

import pytest

from tests.harness import Cluster

CHANGES: list[tuple[str, str, str, str]] = [
    # (name, manifest, changed manifest, jsonpath expected after the change)
    (
        "pod",
        """
apiVersion: v1
kind: Pod
metadata: {name: p, labels: {a: "1", b: "2"}, annotations: {note: one}}
spec:
  containers:
  - name: c
    image: busybox
    ports: [{containerPort: 80}]
    volumeMounts: [{name: v, mountPath: /v}]
  volumes: [{name: v, emptyDir: {}}]
  tolerations: [{key: k, operator: Exists}]
""",
        """
apiVersion: v1
kind: Pod
metadata: {name: p, labels: {a: "3"}, annotations: {note: two}}
spec:
  containers:
  - name: c
    image: busybox:1.36
    ports: [{containerPort: 80}]
    volumeMounts: [{name: v, mountPath: /v}]
  volumes: [{name: v, emptyDir: {}}]
  tolerations: [{key: k, operator: Exists}, {key: j, operator: Exists}]
""",
        "{.metadata.labels} {.spec.containers[0].image} {.spec.tolerations[1].key}",
    ),
    (
        "deployment",
        """
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  replicas: 1
  selector: {matchLabels: {app: d}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1}}
  template:
    metadata: {labels: {app: d}}
    spec:
      securityContext: {runAsUser: 1000}
      volumes: [{name: v, configMap: {name: cm, items: [{key: a, path: a}]}}]
      containers:
      - name: c
        image: python:3.11
        env: [{name: A, value: "1"}, {name: B, value: "2"}]
        envFrom: [{configMapRef: {name: cm}}]
        resources: {requests: {cpu: 100m}, limits: {memory: 64Mi}}
        readinessProbe: {httpGet: {port: 8080, path: /}}
        securityContext: {capabilities: {drop: [ALL]}}
""",
        """
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  replicas: 2
  selector: {matchLabels: {app: d}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: "50%"}}
  template:
    metadata: {labels: {app: d}}
    spec:
      securityContext: {runAsUser: 1001}
      volumes: [{name: v, configMap: {name: cm, items: [{key: b, path: b}]}}]
      containers:
      - name: c
        image: python:3.12
        env: [{name: A, value: "3"}]
        envFrom: [{configMapRef: {name: cm2}}]
        resources: {requests: {cpu: 200m}, limits: {memory: 128Mi}}
        readinessProbe: {httpGet: {port: http, path: /ready}}
        securityContext: {capabilities: {drop: [NET_RAW]}}
""",
        "{.spec.replicas} {.spec.template.spec.containers[0].env} {.spec.template.spec.containers[0].readinessProbe.httpGet.port}",
    ),
    (
        "service",
        """
apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  selector: {app: s}
  ports: [{name: http, port: 80, targetPort: 8080}, {name: tls, port: 443}]
""",
        """
apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  selector: {app: s2}
  ports: [{name: http, port: 80, targetPort: web}]
""",
        "{.spec.selector.app} {.spec.ports[*].port} {.spec.ports[0].targetPort}",
    ),
    (
        "job",
        """
apiVersion: batch/v1
kind: Job
metadata: {name: j, labels: {a: "1"}}
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
""",
        """
apiVersion: batch/v1
kind: Job
metadata: {name: j, labels: {a: "2"}}
spec:
  backoffLimit: 4
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
""",
        "{.metadata.labels.a} {.spec.backoffLimit}",
    ),
    (
        "lease-role-binding",
        """
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: l}
spec: {holderIdentity: a, leaseDurationSeconds: 10}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: r}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: rb}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}
subjects: [{kind: User, name: ann, apiGroup: rbac.authorization.k8s.io}]
""",
        """
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: l}
spec: {holderIdentity: b, leaseDurationSeconds: 15}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: r}
rules: [{apiGroups: [""], resources: [pods, services], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: rb}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}
subjects: [{kind: User, name: bob, apiGroup: rbac.authorization.k8s.io}]
""",
        "",
    ),
    (
        "node-namespace",
        """
apiVersion: v1
kind: Node
metadata: {name: openapi-node, labels: {zone: a}}
spec:
  taints: [{key: k, value: v, effect: NoSchedule}]
---
apiVersion: v1
kind: Namespace
metadata: {name: openapi-ns, labels: {team: a}}
""",
        """
apiVersion: v1
kind: Node
metadata: {name: openapi-node, labels: {zone: b}}
spec:
  taints: [{key: k, value: w, effect: NoExecute}]
---
apiVersion: v1
kind: Namespace
metadata: {name: openapi-ns, labels: {team: b}}
""",
        "",
    ),
]

EXPECTED = {
    "pod": '{"a":"3"} busybox:1.36 j',
    "deployment": '2 [{"name":"A","value":"3"}] http',
    "service": "s2 80 web",
    "job": "2 4",
}


@pytest.mark.parametrize(("name", "first", "second", "path"), CHANGES, ids=[c[0] for c in CHANGES])
def test_client_side_apply_uses_the_schema_without_warnings(
    api: Cluster, name: str, first: str, second: str, path: str
) -> None:
    created = api.kubectl("apply", "-f", "-", input=first)
    assert "created" in created.stdout and "warning" not in created.stderr
    changed = api.kubectl("apply", "-f", "-", input=second)
    assert "warning" not in changed.stderr, changed.stderr
    assert "configured" in changed.stdout
    again = api.kubectl("apply", "-f", "-", input=second)
    assert "warning" not in again.stderr, again.stderr
    assert "configured" not in again.stdout and "unchanged" in again.stdout
    if path:
        kind = {"pod": "pod/p", "deployment": "deploy/d", "service": "svc/s", "job": "job/j"}[name]
        assert api.kubectl("get", kind, "-o", f"jsonpath={path}").stdout == EXPECTED[name]


def test_explain_walks_every_kind(api: Cluster) -> None:
    for path, fragment in [
        ("pods.spec.containers.ports", "containerPort"),
        ("pods.spec.containers.resources.requests", "map[string]Quantity"),
        ("pods.status.containerStatuses", "restartCount"),
        ("deployments.spec.strategy.rollingUpdate", "maxSurge"),
        ("replicasets.spec.template.spec", "containers"),
        ("jobs.spec", "backoffLimit"),
        ("services.spec.ports", "targetPort"),
        ("nodes.spec.taints", "effect"),
        ("leases.spec", "holderIdentity"),
        ("events", "involvedObject"),
        ("endpoints.subsets.addresses", "ip"),
        ("roles.rules", "verbs"),
        ("clusterrolebindings.roleRef", "apiGroup"),
        ("namespaces.status", "phase"),
        ("pods.metadata", "ownerReferences"),
    ]:
        result = api.kubectl("explain", path)
        assert fragment in result.stdout, f"kubectl explain {path}:\n{result.stdout}"
