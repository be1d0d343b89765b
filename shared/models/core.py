"""The core/v1 kinds redkube serves: Namespace, Node, Pod, Service, Endpoints, Event, Binding."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.models.base import (
    Condition,
    K8sModel,
    LabelSelector,
    ObjectMeta,
    ResourceRequirements,
    TypedObject,
)

IntOrString = int | str


# --- Namespace -------------------------------------------------------------------


class NamespaceSpec(K8sModel):
    finalizers: list[str] | None = None


class NamespaceStatus(K8sModel):
    phase: str | None = None
    conditions: list[Condition] | None = None


class Namespace(TypedObject):
    spec: NamespaceSpec | None = None
    status: NamespaceStatus | None = None


# --- Node ------------------------------------------------------------------------


class Taint(K8sModel):
    key: str
    value: str | None = None
    effect: str
    timeAdded: str | None = None


class NodeSpec(K8sModel):
    podCIDR: str | None = None
    podCIDRs: list[str] | None = None
    providerID: str | None = None
    unschedulable: bool | None = None
    taints: list[Taint] | None = None
    known_fields = frozenset({"configSource", "externalID"})


class NodeAddress(K8sModel):
    type: str
    address: str


class NodeStatus(K8sModel):
    capacity: dict[str, str | int] | None = None
    allocatable: dict[str, str | int] | None = None
    phase: str | None = None
    conditions: list[Condition] | None = None
    addresses: list[NodeAddress] | None = None
    daemonEndpoints: dict[str, Any] | None = None
    nodeInfo: dict[str, str] | None = None
    images: list[dict[str, Any]] | None = None
    known_fields = frozenset({"volumesInUse", "volumesAttached", "config", "runtimeHandlers", "features"})


class Node(TypedObject):
    spec: NodeSpec = Field(default_factory=NodeSpec)
    status: NodeStatus | None = None


# --- Pod -------------------------------------------------------------------------


class ObjectFieldSelector(K8sModel):
    fieldPath: str
    apiVersion: str | None = None


class EnvVarSource(K8sModel):
    fieldRef: ObjectFieldSelector | None = None
    known_fields = frozenset({"resourceFieldRef", "configMapKeyRef", "secretKeyRef"})


class EnvVar(K8sModel):
    name: str
    value: str | None = None
    valueFrom: EnvVarSource | None = None


class ContainerPort(K8sModel):
    containerPort: int
    name: str | None = None
    protocol: str = "TCP"
    hostPort: int | None = None
    hostIP: str | None = None


class ExecAction(K8sModel):
    command: list[str] | None = None


class HTTPHeader(K8sModel):
    name: str
    value: str


class HTTPGetAction(K8sModel):
    path: str | None = None
    port: IntOrString
    host: str | None = None
    scheme: str = "HTTP"
    httpHeaders: list[HTTPHeader] | None = None


class TCPSocketAction(K8sModel):
    port: IntOrString
    host: str | None = None


class Probe(K8sModel):
    exec: ExecAction | None = None
    httpGet: HTTPGetAction | None = None
    tcpSocket: TCPSocketAction | None = None
    initialDelaySeconds: int | None = None
    timeoutSeconds: int = 1
    periodSeconds: int = 10
    successThreshold: int = 1
    failureThreshold: int = 3
    terminationGracePeriodSeconds: int | None = None
    known_fields = frozenset({"grpc"})


class Container(K8sModel):
    name: str
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    workingDir: str | None = None
    ports: list[ContainerPort] | None = None
    env: list[EnvVar] | None = None
    resources: ResourceRequirements | None = None
    livenessProbe: Probe | None = None
    readinessProbe: Probe | None = None
    startupProbe: Probe | None = None
    terminationMessagePath: str = "/dev/termination-log"
    terminationMessagePolicy: str = "File"
    imagePullPolicy: str | None = None
    known_fields = frozenset(
        {
            "envFrom",
            "volumeMounts",
            "volumeDevices",
            "lifecycle",
            "securityContext",
            "stdin",
            "stdinOnce",
            "tty",
            "resizePolicy",
            "restartPolicy",
        }
    )


class Toleration(K8sModel):
    key: str | None = None
    operator: str | None = None
    value: str | None = None
    effect: str | None = None
    tolerationSeconds: int | None = None


class NodeSelectorRequirement(K8sModel):
    key: str
    operator: str
    values: list[str] | None = None


class NodeSelectorTerm(K8sModel):
    matchExpressions: list[NodeSelectorRequirement] | None = None
    matchFields: list[NodeSelectorRequirement] | None = None


class NodeSelector(K8sModel):
    nodeSelectorTerms: list[NodeSelectorTerm]


class PreferredSchedulingTerm(K8sModel):
    weight: int
    preference: NodeSelectorTerm


class NodeAffinity(K8sModel):
    requiredDuringSchedulingIgnoredDuringExecution: NodeSelector | None = None
    preferredDuringSchedulingIgnoredDuringExecution: list[PreferredSchedulingTerm] | None = None


class Affinity(K8sModel):
    nodeAffinity: NodeAffinity | None = None
    known_fields = frozenset({"podAffinity", "podAntiAffinity"})


class PodSpec(K8sModel):
    containers: list[Container]
    initContainers: list[Container] | None = None
    restartPolicy: str = "Always"
    terminationGracePeriodSeconds: int = 30
    activeDeadlineSeconds: int | None = None
    nodeName: str | None = None
    nodeSelector: dict[str, str] | None = None
    affinity: Affinity | None = None
    tolerations: list[Toleration] | None = None
    schedulerName: str = "default-scheduler"
    serviceAccountName: str | None = None
    hostname: str | None = None
    subdomain: str | None = None
    priority: int | None = None
    dnsPolicy: str = "ClusterFirst"
    enableServiceLinks: bool | None = None
    known_fields = frozenset(
        {
            "volumes",
            "ephemeralContainers",
            "serviceAccount",
            "automountServiceAccountToken",
            "hostNetwork",
            "hostPID",
            "hostIPC",
            "shareProcessNamespace",
            "securityContext",
            "imagePullSecrets",
            "priorityClassName",
            "dnsConfig",
            "readinessGates",
            "runtimeClassName",
            "preemptionPolicy",
            "overhead",
            "topologySpreadConstraints",
            "setHostnameAsFQDN",
            "os",
            "hostUsers",
            "schedulingGates",
            "resourceClaims",
            "hostAliases",
            "deprecatedServiceAccount",
        }
    )


class ContainerState(K8sModel):
    waiting: dict[str, Any] | None = None
    running: dict[str, Any] | None = None
    terminated: dict[str, Any] | None = None


class ContainerStatus(K8sModel):
    name: str
    state: ContainerState | None = None
    lastState: ContainerState | None = None
    ready: bool = False
    restartCount: int = 0
    image: str = ""
    imageID: str = ""
    containerID: str | None = None
    started: bool | None = None


class PodStatus(K8sModel):
    phase: str | None = None
    conditions: list[Condition] | None = None
    message: str | None = None
    reason: str | None = None
    hostIP: str | None = None
    hostIPs: list[dict[str, str]] | None = None
    podIP: str | None = None
    podIPs: list[dict[str, str]] | None = None
    startTime: str | None = None
    initContainerStatuses: list[ContainerStatus] | None = None
    containerStatuses: list[ContainerStatus] | None = None
    qosClass: str | None = None
    nominatedNodeName: str | None = None
    known_fields = frozenset({"ephemeralContainerStatuses", "resize", "resourceClaimStatuses"})


class Pod(TypedObject):
    spec: PodSpec
    status: PodStatus | None = None


class PodTemplateSpec(K8sModel):
    metadata: ObjectMeta | None = None
    spec: PodSpec


class Binding(TypedObject):
    target: dict[str, str]


# --- Service and Endpoints -------------------------------------------------------


class ServicePort(K8sModel):
    port: int
    name: str | None = None
    protocol: str = "TCP"
    targetPort: IntOrString | None = None
    nodePort: int | None = None
    appProtocol: str | None = None


class ServiceSpec(K8sModel):
    ports: list[ServicePort] | None = None
    selector: dict[str, str] | None = None
    clusterIP: str | None = None
    clusterIPs: list[str] | None = None
    type: str = "ClusterIP"
    sessionAffinity: str = "None"
    externalName: str | None = None
    externalTrafficPolicy: str | None = None
    internalTrafficPolicy: str | None = None
    publishNotReadyAddresses: bool | None = None
    known_fields = frozenset(
        {
            "externalIPs",
            "loadBalancerIP",
            "loadBalancerSourceRanges",
            "healthCheckNodePort",
            "sessionAffinityConfig",
            "ipFamilies",
            "ipFamilyPolicy",
            "allocateLoadBalancerNodePorts",
            "loadBalancerClass",
            "trafficDistribution",
        }
    )


class Service(TypedObject):
    spec: ServiceSpec = Field(default_factory=ServiceSpec)
    status: dict[str, Any] | None = None


class EndpointAddress(K8sModel):
    ip: str
    hostname: str | None = None
    nodeName: str | None = None
    targetRef: dict[str, Any] | None = None


class EndpointPort(K8sModel):
    port: int
    name: str | None = None
    protocol: str = "TCP"
    appProtocol: str | None = None


class EndpointSubset(K8sModel):
    addresses: list[EndpointAddress] | None = None
    notReadyAddresses: list[EndpointAddress] | None = None
    ports: list[EndpointPort] | None = None


class Endpoints(TypedObject):
    subsets: list[EndpointSubset] | None = None


# --- Event -----------------------------------------------------------------------


class ObjectReference(K8sModel):
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    uid: str | None = None
    apiVersion: str | None = None
    resourceVersion: str | None = None
    fieldPath: str | None = None


class Event(TypedObject):
    involvedObject: ObjectReference
    reason: str | None = None
    message: str | None = None
    source: dict[str, str] | None = None
    firstTimestamp: str | None = None
    lastTimestamp: str | None = None
    eventTime: str | None = None
    count: int | None = None
    type: str | None = None
    reportingComponent: str | None = None
    reportingInstance: str | None = None
    action: str | None = None
    known_fields = frozenset({"series", "related"})


__all__ = [
    "Binding",
    "Container",
    "Endpoints",
    "Event",
    "LabelSelector",
    "Namespace",
    "Node",
    "Pod",
    "PodSpec",
    "PodTemplateSpec",
    "Service",
]


# --- ConfigMap, Secret, ServiceAccount -------------------------------------------------


class ConfigMap(TypedObject):
    data: dict[str, str] | None = None
    binaryData: dict[str, str] | None = None
    immutable: bool | None = None


class Secret(TypedObject):
    data: dict[str, str] | None = None
    stringData: dict[str, str] | None = None
    type: str = "Opaque"
    immutable: bool | None = None


class ServiceAccount(TypedObject):
    secrets: list[dict[str, Any]] | None = None
    imagePullSecrets: list[dict[str, Any]] | None = None
    automountServiceAccountToken: bool | None = None
