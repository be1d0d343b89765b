"""DaemonSet, StatefulSet and CronJob as kubectl meets them: discovery, explain, apply of
manifests written for real clusters (re-applied to change them), imperative create
(a protobuf body), ``kubectl get all`` and validation. The controllers' behaviour is in
tests/integration/test_daemonset.py, test_statefulset.py and test_cronjob.py."""

from __future__ import annotations

from tests.harness import Cluster, wait_for
from tests.support_controllers import start_controller_manager
from tests.support_scheduler import start_scheduler

MANIFEST = """
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: fluentd-elasticsearch
  namespace: kube-system
  labels:
    k8s-app: fluentd-logging
spec:
  selector:
    matchLabels:
      name: fluentd-elasticsearch
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 1
  template:
    metadata:
      labels:
        name: fluentd-elasticsearch
    spec:
      tolerations:
      - key: node-role.kubernetes.io/control-plane
        operator: Exists
        effect: NoSchedule
      containers:
      - name: fluentd-elasticsearch
        image: quay.io/fluentd_elasticsearch/fluentd:v2.5.2
        resources:
          limits:
            memory: 200Mi
          requests:
            cpu: 100m
            memory: 200Mi
        volumeMounts:
        - name: varlog
          mountPath: /var/log
      terminationGracePeriodSeconds: 30
      volumes:
      - name: varlog
        hostPath:
          path: /var/log
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  selector:
    matchLabels:
      app: nginx
  serviceName: "nginx"
  replicas: 3
  minReadySeconds: 10
  template:
    metadata:
      labels:
        app: nginx
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: nginx
        image: registry.k8s.io/nginx-slim:0.24
        ports:
        - containerPort: 80
          name: web
        volumeMounts:
        - name: www
          mountPath: /usr/share/nginx/html
  volumeClaimTemplates:
  - metadata:
      name: www
    spec:
      accessModes: [ "ReadWriteOnce" ]
      storageClassName: "my-storage-class"
      resources:
        requests:
          storage: 1Gi
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: hello
spec:
  schedule: "* * * * *"
  timeZone: "Etc/UTC"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
          - name: hello
            image: busybox:1.28
            imagePullPolicy: IfNotPresent
            command:
            - /bin/sh
            - -c
            - date; echo Hello from the Kubernetes cluster
          restartPolicy: OnFailure
"""


def test_kinds_discovered_explained_applied_and_defaulted(api: Cluster) -> None:
    resources = api.kubectl("api-resources", "--api-group=apps").stdout + api.kubectl(
        "api-resources", "--api-group=batch").stdout
    for line in (["daemonsets", "ds", "apps/v1", "true", "DaemonSet"],
                 ["statefulsets", "sts", "apps/v1", "true", "StatefulSet"],
                 ["cronjobs", "cj", "batch/v1", "true", "CronJob"]):
        assert any(row.split() == line for row in resources.splitlines()), resources
    assert "maxUnavailable" in api.kubectl("explain", "ds.spec.updateStrategy.rollingUpdate").stdout
    assert "podManagementPolicy" in api.kubectl("explain", "sts.spec").stdout
    assert "concurrencyPolicy" in api.kubectl("explain", "cronjob.spec").stdout

    created = api.kubectl("apply", "-f", "-", input=MANIFEST).stdout
    for expected in ("daemonset.apps/fluentd-elasticsearch created", "statefulset.apps/web created",
                     "cronjob.batch/hello created"):
        assert expected in created
    changed = api.kubectl("apply", "-f", "-", input=MANIFEST.replace("replicas: 3", "replicas: 4"))
    assert "statefulset.apps/web configured" in changed.stdout and "error" not in changed.stderr
    sts = api.kubectl_json("get", "sts", "web")
    assert sts["spec"]["replicas"] == 4 and sts["spec"]["podManagementPolicy"] == "OrderedReady"
    assert sts["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "my-storage-class"
    ds = api.kubectl_json("get", "ds", "fluentd-elasticsearch", "-n", "kube-system")
    assert ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == 1
    cj = api.kubectl_json("get", "cj", "hello")
    assert cj["spec"]["concurrencyPolicy"] == "Allow" and cj["spec"]["successfulJobsHistoryLimit"] == 3

    # kubectl scale goes through the scale subresource.
    assert "statefulset.apps/web scaled" in api.kubectl("scale", "sts", "web", "--replicas=2").stdout
    assert api.kubectl_json("get", "sts", "web")["spec"]["replicas"] == 2

    # An imperative create sends a protobuf body.
    made = api.kubectl("create", "cronjob", "tick", "--image=busybox", "--schedule=*/5 * * * *", "--", "date")
    assert "cronjob.batch/tick created" in made.stdout
    tick = api.kubectl_json("get", "cj", "tick")
    assert tick["spec"]["schedule"] == "*/5 * * * *"
    assert tick["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"] == ["date"]

    for kind, name in (("sts", "web"), ("cj", "hello")):
        assert "Name:" in api.kubectl("describe", kind, name).stdout
    assert "fluentd-elasticsearch" in api.kubectl("describe", "ds", "-n", "kube-system").stdout
    assert "restarted" in api.kubectl("rollout", "restart", "sts/web").stdout

    names = api.kubectl("get", "all", "-o", "name").stdout.split()
    assert {"statefulset.apps/web", "cronjob.batch/hello", "cronjob.batch/tick"} <= set(names)

    # Validation: a schedule that is not one, a selector that does not match, a changed serviceName.
    bad = api.kubectl("apply", "-f", "-", input=MANIFEST.split("---")[2].replace("* * * * *", "61 * * * *"),
                      check=False)
    assert bad.returncode != 0 and "spec.schedule" in bad.stderr
    bad = api.kubectl("apply", "-f", "-", input=MANIFEST.split("---")[1].replace("app: nginx\n  serviceName",
                                                                                  "app: other\n  serviceName"),
                      check=False)
    assert bad.returncode != 0 and "selector" in bad.stderr
    bad = api.kubectl("patch", "sts", "web", "-p", '{"spec":{"serviceName":"other"}}', check=False)
    assert bad.returncode != 0 and "Forbidden" in bad.stderr

    api.kubectl("delete", "-f", "-", input=MANIFEST)
    api.kubectl("delete", "cj", "tick")
    assert api.kubectl("get", "ds,sts,cj", "-A", "-o", "name").stdout.strip() == ""


def test_daemonset_and_statefulset_on_a_real_kubelet(node: Cluster) -> None:
    """The whole path: controllers make the pods, a real kubelet runs them as processes."""
    start_controller_manager(node, controllers="daemonset,statefulset,garbage_collector")
    start_scheduler(node)
    wait_for(lambda: node.kubectl("get", "node", "n1", check=False).returncode == 0, timeout=30,
             message="the kubelet registers its node")
    manifest = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: daemon}
spec:
  selector: {matchLabels: {app: daemon}}
  template:
    metadata: {labels: {app: daemon}}
    spec:
      containers: [{name: main, image: busybox, command: ["sleep", "1000"]}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: main, image: busybox, command: ["sleep", "1000"]}]
"""
    node.kubectl("apply", "-f", "-", input=manifest)
    node.kubectl("rollout", "status", "ds/daemon", "--timeout=40s", timeout=50)
    node.kubectl("rollout", "status", "sts/db", "--timeout=40s", timeout=50)
    pods = node.kubectl_json("get", "pods")["items"]
    running = sorted(p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running")
    assert [n for n in running if n.startswith("db-")] == ["db-0", "db-1"]
    assert len([n for n in running if n.startswith("daemon-")]) == 1
    node.kubectl("delete", "-f", "-", "--timeout=40s", input=manifest, timeout=50)
    wait_for(lambda: not node.kubectl_json("get", "pods")["items"], timeout=30, message="pods gone")
