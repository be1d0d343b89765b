"""OpenAPI v3 discovery with real schemas, generated from the pydantic models.

kubectl reads these documents for three things:

- server-side field validation: v1.32 validates manifests on the server
  (``fieldValidation=Strict``) only when the kind's PATCH operation lists that query
  parameter; keep it there;
- ``kubectl explain``: it finds a kind's schema by ``x-kubernetes-group-version-kind``
  and walks ``properties`` through ``$ref``/``allOf``;
- client-side ``apply``: the three-way strategic merge patch is computed from the
  schema (``x-kubernetes-patch-merge-key`` / ``x-kubernetes-patch-strategy``); a field
  it cannot find makes kubectl print "error calculating patch from openapi v3 spec".

So every modelled field is described, fields Kubernetes defines but redkube does not
model (``known_fields``) are listed with ``x-kubernetes-preserve-unknown-fields``, and
schema names follow Kubernetes (``io.k8s.api.core.v1.PodSpec``). The documents are
static, so each is built once and cached.
"""

from __future__ import annotations

import copy
import hashlib
import json
import typing
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.models.base import K8sModel
from shared.patch import MERGE_KEYS, PRIMITIVE_MERGE
from shared.resources import GROUPS, RESOURCES, SUBRESOURCE_MODELS, Resource

REF_PREFIX = "#/components/schemas/"
META = "io.k8s.apimachinery.pkg.apis.meta.v1"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"

#: Kubernetes package of a model, by module (and by class where a module mixes groups).
MODULE_PACKAGES = {
    "shared.models.base": META,
    "shared.models.core": "io.k8s.api.core.v1",
    "shared.models.rbac": "io.k8s.api.rbac.v1",
    "shared.models.workloads": "io.k8s.api.apps.v1",
}
CLASS_PACKAGES = {
    "ResourceRequirements": "io.k8s.api.core.v1",
    "Job": "io.k8s.api.batch.v1",
    "JobSpec": "io.k8s.api.batch.v1",
    "JobStatus": "io.k8s.api.batch.v1",
    "CronJob": "io.k8s.api.batch.v1",
    "CronJobSpec": "io.k8s.api.batch.v1",
    "CronJobStatus": "io.k8s.api.batch.v1",
    "JobTemplateSpec": "io.k8s.api.batch.v1",
    "Lease": "io.k8s.api.coordination.v1",
    "LeaseSpec": "io.k8s.api.coordination.v1",
    "Eviction": "io.k8s.api.policy.v1",
    "Scale": "io.k8s.api.autoscaling.v1",
}

#: Shapes of the fields Kubernetes defines that redkube keeps without modelling.
_KNOWN_ARRAYS_OF_STRINGS = {"externalIPs", "loadBalancerSourceRanges", "ipFamilies", "volumesInUse"}
_KNOWN_ARRAYS = {
    "volumesAttached",
    "runtimeHandlers",
    "envFrom",
    "volumeMounts",
    "volumeDevices",
    "resizePolicy",
    "volumes",
    "ephemeralContainers",
    "imagePullSecrets",
    "readinessGates",
    "topologySpreadConstraints",
    "schedulingGates",
    "resourceClaims",
    "hostAliases",
    "ephemeralContainerStatuses",
    "resourceClaimStatuses",
}
_KNOWN_BOOLEANS = {
    "stdin",
    "stdinOnce",
    "tty",
    "automountServiceAccountToken",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "shareProcessNamespace",
    "setHostnameAsFQDN",
    "hostUsers",
    "allocateLoadBalancerNodePorts",
}
_KNOWN_INTEGERS = {
    "healthCheckNodePort",
    "terminatingReplicas",
    "backoffLimitPerIndex",
    "maxFailedIndexes",
    "terminating",
}
_KNOWN_STRINGS = {
    "selfLink",
    "externalID",
    "restartPolicy",
    "serviceAccount",
    "priorityClassName",
    "runtimeClassName",
    "preemptionPolicy",
    "deprecatedServiceAccount",
    "resize",
    "loadBalancerIP",
    "ipFamilyPolicy",
    "loadBalancerClass",
    "trafficDistribution",
    "podReplacementPolicy",
    "managedBy",
    "completedIndexes",
    "failedIndexes",
    "preferredHolder",
    "strategy",
}

CORE = "io.k8s.api.core.v1"


def _props(required: tuple[str, ...] = (), **props: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    return out


def _ref(name: str) -> dict[str, Any]:
    return {"allOf": [{"$ref": f"{REF_PREFIX}{CORE}.{name}"}], "default": {}}


_S, _I, _B = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
_ANY = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_KEY_TO_PATH = {"type": "array", "items": _props(("key", "path"), key=_S, path=_S, mode=_I)}

#: Hand-written schemas for unmodelled fields that manifests use every day, so a changed
#: volume or mount still yields a strategic merge patch computed from the schema.
HANDWRITTEN: dict[str, dict[str, Any]] = {
    f"{CORE}.Volume": _props(
        ("name",),
        name=_S,
        emptyDir=_props(medium=_S, sizeLimit={"allOf": [{"$ref": f"{REF_PREFIX}{QUANTITY}"}]}),
        hostPath=_props(("path",), path=_S, type=_S),
        configMap=_props(name=_S, items=_KEY_TO_PATH, defaultMode=_I, optional=_B),
        secret=_props(secretName=_S, items=_KEY_TO_PATH, defaultMode=_I, optional=_B),
        persistentVolumeClaim=_props(("claimName",), claimName=_S, readOnly=_B),
        downwardAPI=_ANY,
        projected=_ANY,
        csi=_ANY,
        ephemeral=_ANY,
        nfs=_props(("server", "path"), server=_S, path=_S, readOnly=_B),
    ),
    f"{CORE}.VolumeMount": _props(
        ("name", "mountPath"),
        name=_S,
        mountPath=_S,
        readOnly=_B,
        subPath=_S,
        subPathExpr=_S,
        mountPropagation=_S,
        recursiveReadOnly=_S,
    ),
    f"{CORE}.EnvFromSource": _props(
        prefix=_S,
        configMapRef=_props(name=_S, optional=_B),
        secretRef=_props(name=_S, optional=_B),
    ),
    f"{CORE}.LocalObjectReference": _props(name=_S),
    f"{CORE}.SecurityContext": _props(
        runAsUser=_I,
        runAsGroup=_I,
        runAsNonRoot=_B,
        privileged=_B,
        readOnlyRootFilesystem=_B,
        allowPrivilegeEscalation=_B,
        capabilities=_props(add={"type": "array", "items": _S}, drop={"type": "array", "items": _S}),
        seccompProfile=_props(type=_S, localhostProfile=_S),
        seLinuxOptions=_ANY,
        procMount=_S,
        appArmorProfile=_ANY,
        windowsOptions=_ANY,
    ),
    f"{CORE}.PodSecurityContext": _props(
        runAsUser=_I,
        runAsGroup=_I,
        runAsNonRoot=_B,
        fsGroup=_I,
        fsGroupChangePolicy=_S,
        supplementalGroups={"type": "array", "items": _I},
        seccompProfile=_props(type=_S, localhostProfile=_S),
        sysctls={"type": "array", "items": _props(("name", "value"), name=_S, value=_S)},
        seLinuxOptions=_ANY,
        appArmorProfile=_ANY,
        windowsOptions=_ANY,
    ),
}

#: (model, field) -> schema of a known, unmodelled field that has a hand-written shape.
HANDWRITTEN_FIELDS: dict[tuple[str, str], dict[str, Any]] = {
    ("PodSpec", "volumes"): {"type": "array", "items": _ref("Volume")},
    ("PodSpec", "imagePullSecrets"): {"type": "array", "items": _ref("LocalObjectReference")},
    ("PodSpec", "securityContext"): _ref("PodSecurityContext"),
    ("Container", "volumeMounts"): {"type": "array", "items": _ref("VolumeMount")},
    ("Container", "envFrom"): {"type": "array", "items": _ref("EnvFromSource")},
    ("Container", "securityContext"): _ref("SecurityContext"),
}

#: The descriptions kubectl explain shows most often; everything else goes without.
DESCRIPTIONS = {
    "apiVersion": "APIVersion defines the versioned schema of this representation of an object.",
    "kind": "Kind is a string value representing the REST resource this object represents.",
    "metadata": "Standard object's metadata.",
    "spec": "Specification of the desired behavior of the object.",
    "status": "Most recently observed status of the object. Populated by the system. Read-only.",
    "containers": "List of containers belonging to the pod.",
    "initContainers": "List of initialization containers belonging to the pod.",
    "image": "Container image name.",
    "command": "Entrypoint array. Not executed within a shell.",
    "args": "Arguments to the entrypoint.",
    "env": "List of environment variables to set in the container.",
    "ports": "List of ports.",
    "replicas": "Number of desired pods.",
    "selector": "Label query over pods.",
    "template": "Template describes the pods that will be created.",
    "labels": "Map of string keys and values that can be used to organize and categorize objects.",
    "annotations": "Unstructured key value map stored with a resource.",
    "name": "Name must be unique within a namespace.",
    "namespace": "Namespace defines the space within which each name must be unique.",
    "nodeName": "The node this pod is bound to; set by the scheduler.",
    "restartPolicy": "Restart policy for all containers within the pod: Always, OnFailure or Never.",
    "resources": "Compute resources required by this container.",
}


KIND_DESCRIPTIONS = {
    "Pod": "Pod is a collection of containers that can run on a host.",
    "Node": "Node is a worker in Kubernetes; each node runs a kubelet and a proxy.",
    "Namespace": "Namespace provides a scope for Names.",
    "Service": "Service is a named abstraction of software service: a port the proxy listens on and a selector.",
    "Endpoints": "Endpoints is the set of addresses that implement a service.",
    "Event": "Event is a report of an event somewhere in the cluster.",
    "ReplicaSet": "ReplicaSet ensures that a specified number of pod replicas are running at any given time.",
    "Deployment": "Deployment enables declarative updates for Pods and ReplicaSets.",
    "Job": "Job represents the configuration of a single job.",
    "DaemonSet": "DaemonSet represents the configuration of a daemon set.",
    "StatefulSet": "StatefulSet represents a set of pods with consistent identities.",
    "CronJob": "CronJob represents the configuration of a single cron job.",
    "Lease": "Lease defines a lease concept.",
}


def _package(cls: type[BaseModel]) -> str:
    return CLASS_PACKAGES.get(cls.__name__) or MODULE_PACKAGES.get(cls.__module__, "io.k8s.redkube.v1")


def schema_name(cls: type[BaseModel]) -> str:
    return f"{_package(cls)}.{cls.__name__}"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def _all_models(roots: list[type[BaseModel]]) -> list[type[BaseModel]]:
    """Every model reachable from ``roots``."""
    seen: list[type[BaseModel]] = []
    todo = list(roots)
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.append(cls)
        for info in cls.model_fields.values():
            todo += _models_in(info.annotation)
    return seen


def _is_null(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null"


def _scalar_types(schemas: list[Any]) -> set[str]:
    return {str(s["type"]) for s in schemas if isinstance(s, dict) and set(s) == {"type"}}


def _convert(schema: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """pydantic's JSON schema of one value -> the Kubernetes OpenAPI flavour."""
    schema = {k: v for k, v in schema.items() if k not in ("title",)}
    if schema.get("default", 0) is None:
        del schema["default"]
    if "$ref" in schema:
        target = names[schema.pop("$ref").removeprefix(REF_PREFIX)]
        schema["allOf"] = [{"$ref": f"{REF_PREFIX}{target}"}]
        return schema
    if "anyOf" in schema:
        options = [o for o in schema.pop("anyOf") if not _is_null(o)]
        types_ = _scalar_types(options)
        if len(options) == 1:
            inner = _convert(options[0], names)
            inner.update(schema)
            return inner
        if types_ >= {"string", "integer"} and "number" in types_:
            return {**schema, "allOf": [{"$ref": f"{REF_PREFIX}{QUANTITY}"}]}
        if types_ == {"string", "integer"} and len(options) == 2:
            return {**schema, "allOf": [{"$ref": f"{REF_PREFIX}{INT_OR_STRING}"}]}
        schema["anyOf"] = [_convert(o, names) for o in options]
        return schema
    if schema.get("type") == "object" or "additionalProperties" in schema:
        extra = schema.get("additionalProperties")
        if extra is True or extra == {}:
            schema.pop("additionalProperties")
            schema["type"] = "object"
            schema["x-kubernetes-preserve-unknown-fields"] = True
        elif isinstance(extra, dict):
            schema["additionalProperties"] = _convert(extra, names)
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        schema["items"] = _convert(schema["items"], names)
        if "allOf" in schema["items"]:
            schema["items"]["default"] = {}
    return schema


def _known_field(name: str) -> dict[str, Any]:
    if name in _KNOWN_ARRAYS_OF_STRINGS:
        return {"type": "array", "items": {"type": "string"}}
    if name in _KNOWN_ARRAYS:
        return {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    for names, kind in (
        (_KNOWN_BOOLEANS, "boolean"),
        (_KNOWN_INTEGERS, "integer"),
        (_KNOWN_STRINGS, "string"),
    ):
        if name in names:
            return {"type": kind}
    return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _item_model(cls: type[BaseModel], field: str) -> type[BaseModel] | None:
    info = cls.model_fields.get(field)
    models = _models_in(info.annotation) if info is not None else []
    return models[0] if models else None


def _patch_extensions(cls: type[BaseModel], field: str, prop: dict[str, Any]) -> None:
    """Declare how strategic merge treats a list field, exactly as ``shared.patch`` merges it."""
    if prop.get("type") != "array":
        return
    if field in PRIMITIVE_MERGE:
        prop["x-kubernetes-patch-strategy"] = "merge"
        prop["x-kubernetes-list-type"] = "set"
        return
    item = _item_model(cls, field)
    if field == "ports":
        key = "containerPort" if item is not None and "containerPort" in item.model_fields else "port"
    else:
        key = MERGE_KEYS.get(field, "")
    # A merge key the items do not have (Endpoints addresses are not Node addresses) means atomic.
    if not key or (item is not None and key not in item.model_fields):
        return
    prop["x-kubernetes-patch-merge-key"] = key
    prop["x-kubernetes-patch-strategy"] = "merge"
    prop["x-kubernetes-list-type"] = "map"
    prop["x-kubernetes-list-map-keys"] = [key]


def _object_schema(cls: type[BaseModel], raw: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object"}
    if cls.__doc__ and issubclass(cls, K8sModel) and "__doc__" in cls.__dict__:
        out["description"] = " ".join(cls.__doc__.split())
    properties: dict[str, Any] = {}
    for field, prop in (raw.get("properties") or {}).items():
        converted = _convert(prop, names)
        if field in DESCRIPTIONS and "description" not in converted:
            converted["description"] = DESCRIPTIONS[field]
        if field == "metadata" and "allOf" in converted:
            converted["default"] = {}
        _patch_extensions(cls, field, converted)
        properties[field] = converted
    known: frozenset[str] = getattr(cls, "known_fields", frozenset())
    for field in sorted(known):
        if field not in properties:
            prop = copy.deepcopy(HANDWRITTEN_FIELDS.get((cls.__name__, field)) or _known_field(field))
            if field in MERGE_KEYS or field in PRIMITIVE_MERGE:
                _patch_extensions(cls, field, prop)
            properties[field] = prop
    out["properties"] = properties
    if raw.get("required"):
        out["required"] = list(raw["required"])
    return out


def _gvk(resource: Resource, kind: str | None = None) -> dict[str, str]:
    return {"group": resource.group, "version": resource.version, "kind": kind or resource.kind}


SUBRESOURCE_GVK = {
    "Scale": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
    "Eviction": {"group": "policy", "version": "v1", "kind": "Eviction"},
    "Binding": {"group": "", "version": "v1", "kind": "Binding"},
}


@cache
def component_schemas() -> dict[str, dict[str, Any]]:
    """Every schema, keyed by its Kubernetes name (all documents draw from this)."""
    roots: list[type[BaseModel]] = [r.model for r in RESOURCES]
    roots += list(SUBRESOURCE_MODELS.values())
    from shared.models.base import ListMeta

    roots.append(ListMeta)
    found = _all_models(roots)
    refs, top = models_json_schema([(m, "validation") for m in found], ref_template=REF_PREFIX + "{model}")
    defs: dict[str, Any] = top.get("$defs", {})
    # pydantic names a def after its class, qualified when two classes share a name: map its keys back.
    models = {refs[(m, "validation")]["$ref"].removeprefix(REF_PREFIX): m for m in found}
    names = {key: schema_name(models[key]) for key in defs}
    schemas: dict[str, dict[str, Any]] = {
        **copy.deepcopy(HANDWRITTEN),
        INT_OR_STRING: {
            "description": "An int32 or a string (a port number or a name, a count or a percentage).",
            "type": "string",
            "format": "int-or-string",
        },
        QUANTITY: {
            "description": "A fixed-point number: 100m, 1.5, 128Mi, 2Gi.",
            "oneOf": [{"type": "string"}, {"type": "number"}],
        },
    }
    for key, raw in defs.items():
        schemas[names[key]] = _object_schema(models[key], raw, names)
    for resource in RESOURCES:
        name = schema_name(resource.model)
        schemas[name]["x-kubernetes-group-version-kind"] = [_gvk(resource)]
        # Kubernetes requires no top-level field in its schemas; defaults fill a missing spec.
        schemas[name].pop("required", None)
        if resource.kind in KIND_DESCRIPTIONS:
            schemas[name]["description"] = KIND_DESCRIPTIONS[resource.kind]
        schemas[f"{name}List"] = {
            "type": "object",
            "description": f"A list of {resource.kind} objects.",
            "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string", "description": DESCRIPTIONS["apiVersion"]},
                "kind": {"type": "string", "description": DESCRIPTIONS["kind"]},
                "metadata": {"allOf": [{"$ref": f"{REF_PREFIX}{META}.ListMeta"}], "default": {}},
                "items": {"type": "array", "items": {"allOf": [{"$ref": f"{REF_PREFIX}{name}"}], "default": {}}},
            },
            "x-kubernetes-group-version-kind": [_gvk(resource, resource.list_kind)],
        }
    for model in SUBRESOURCE_MODELS.values():
        schemas[schema_name(model)]["x-kubernetes-group-version-kind"] = [SUBRESOURCE_GVK[model.__name__]]
    return schemas


def _refs(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            found.add(ref.removeprefix(REF_PREFIX))
        for value in schema.values():
            found |= _refs(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= _refs(value)
    return found


def _closure(roots: set[str]) -> dict[str, Any]:
    schemas = component_schemas()
    done: dict[str, Any] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in done or name not in schemas:
            continue
        done[name] = copy.deepcopy(schemas[name])
        todo += list(_refs(done[name]))
    return dict(sorted(done.items()))


# --- paths -------------------------------------------------------------------------


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _query(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": {"type": "string"}, "uniqueItems": True}


WRITE_PARAMS = [
    _query("dryRun", "When present, indicates that modifications should not be persisted."),
    _query("fieldManager", "a name associated with the actor or entity that is making these changes."),
    _query(
        "fieldValidation",
        "instructs the server on how to handle objects in the request containing "
        "unknown or duplicate fields: Ignore, Warn or Strict.",
    ),
]
LIST_PARAMS = [
    _query(n, n)
    for n in (
        "labelSelector",
        "fieldSelector",
        "limit",
        "continue",
        "resourceVersion",
        "watch",
        "timeoutSeconds",
        "allowWatchBookmarks",
    )
]
PATCH_TYPES = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
]


def _operation(
    action: str, gvk: dict[str, str], params: list[dict[str, Any]], schema: str, *, response: str | None = None
) -> dict[str, Any]:
    ref = {"$ref": f"{REF_PREFIX}{schema}"}
    answer = {"$ref": f"{REF_PREFIX}{response or schema}"}
    op: dict[str, Any] = {
        "operationId": f"{action}{gvk['kind']}",
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": answer}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    }
    if action in ("post", "put"):
        op["requestBody"] = {"content": {m: {"schema": ref} for m in ("application/json", "application/yaml")}}
    elif action == "patch":
        op["requestBody"] = {"content": {m: {"schema": {"type": "object"}} for m in PATCH_TYPES}}
    return op


def _paths(resource: Resource) -> dict[str, Any]:
    base = f"/{_gv_path(resource.group, resource.version)}"
    collection = (
        f"{base}/namespaces/{{namespace}}/{resource.plural}" if resource.namespaced else f"{base}/{resource.plural}"
    )
    item = f"{collection}/{{name}}"
    name = schema_name(resource.model)
    gvk = _gvk(resource)
    patch_params = [*WRITE_PARAMS, _query("force", 'Force is going to "force" Apply requests.')]
    paths = {
        collection: {
            "get": _operation("list", gvk, LIST_PARAMS, name, response=f"{name}List"),
            "post": _operation("post", gvk, WRITE_PARAMS, name),
            "delete": _operation("deletecollection", gvk, LIST_PARAMS, name, response=f"{name}List"),
        },
        item: {
            "get": _operation("get", gvk, [], name),
            "put": _operation("put", gvk, WRITE_PARAMS, name),
            "patch": _operation("patch", gvk, patch_params, name),
            "delete": _operation(
                "delete", gvk, [_query("gracePeriodSeconds", ""), _query("propagationPolicy", "")], name
            ),
        },
    }
    if "status" in resource.subresources:
        paths[f"{item}/status"] = {
            "get": _operation("get", gvk, [], name),
            "put": _operation("put", gvk, WRITE_PARAMS, name),
            "patch": _operation("patch", gvk, patch_params, name),
        }
    if "scale" in resource.subresources:
        scale = schema_name(SUBRESOURCE_MODELS["scale"])
        paths[f"{item}/scale"] = {
            "get": _operation("get", SUBRESOURCE_GVK["Scale"], [], scale),
            "put": _operation("put", SUBRESOURCE_GVK["Scale"], WRITE_PARAMS, scale),
            "patch": _operation("patch", SUBRESOURCE_GVK["Scale"], patch_params, scale),
        }
    return paths


@cache
def group_version_document(group: str, version: str) -> dict[str, Any] | None:
    """One group/version document (cached and shared: callers must not change it)."""
    members = [r for r in RESOURCES if r.group == group and r.version == version]
    if not members:
        return None
    paths: dict[str, Any] = {}
    for resource in members:
        paths.update(_paths(resource))
    document = {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0-redkube"},
        "paths": paths,
        "components": {"schemas": _closure(_refs(paths))},
    }
    return document


@cache
def root_document() -> dict[str, Any]:
    paths = {}
    for group, versions in GROUPS.items():
        for version in versions:
            text = json.dumps(group_version_document(group, version), sort_keys=True)
            digest = hashlib.sha256(text.encode()).hexdigest()[:32].upper()
            path = _gv_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


def document(path: str) -> dict[str, Any] | None:
    """The document at an ``/openapi/...`` path, or None (404)."""
    if path == "/openapi/v3":
        return root_document()
    if path.startswith("/openapi/v3/"):
        parts = path.removeprefix("/openapi/v3/").split("/")
        if len(parts) == 2 and parts[0] == "api":
            return group_version_document("", parts[1])
        if len(parts) == 3 and parts[0] == "apis":
            return group_version_document(parts[1], parts[2])
    return None


__all__ = ["component_schemas", "document", "group_version_document", "root_document", "schema_name"]
