"""Validation as Kubernetes does it, reported field by field.

Structure and types come from the pydantic models; this module adds the rules the
models cannot express (name syntax, label syntax, allowed values, cross-field rules,
immutable fields) and turns everything into Status causes:
``{"reason": "FieldValueInvalid", "field": "metadata.name", "message": "Invalid value: …"}``.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from pydantic import ValidationError

from shared import cron, quantity, selectors
from shared.models.base import K8sModel
from shared.resources import Resource

Cause = dict[str, str]

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAMES = {"services": "dns1035", "namespaces": "label"}


def _q(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else json.dumps(value, default=str)


def invalid(field: str, value: Any, detail: str) -> Cause:
    return {"reason": "FieldValueInvalid", "field": field, "message": f"Invalid value: {_q(value)}: {detail}"}


def required(field: str) -> Cause:
    return {"reason": "FieldValueRequired", "field": field, "message": "Required value"}


def unsupported(field: str, value: Any, allowed: tuple[str, ...]) -> Cause:
    choices = ", ".join(_q(a) for a in allowed)
    return {
        "reason": "FieldValueNotSupported",
        "field": field,
        "message": f"Unsupported value: {_q(value)}: supported values: {choices}",
    }


def forbidden(field: str, detail: str) -> Cause:
    return {"reason": "FieldValueForbidden", "field": field, "message": f"Forbidden: {detail}"}


def duplicate(field: str, value: Any) -> Cause:
    return {"reason": "FieldValueDuplicate", "field": field, "message": f"Duplicate value: {_q(value)}"}


def name_problem(value: str, style: str) -> str | None:
    if style == "dns1035":
        if len(value) > 63 or not DNS1035_LABEL.match(value):
            return (
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
                "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
                "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
            )
    elif style == "label":
        if len(value) > 63 or not DNS1123_LABEL.match(value):
            return (
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
                "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            )
    elif len(value) > 253 or not DNS1123_SUBDOMAIN.match(value):
        return (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
            "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
            "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    return None


def pydantic_causes(error: ValidationError, root: str = "") -> list[Cause]:
    causes = []
    for err in error.errors():
        parts: list[str] = []
        for loc in err["loc"]:
            if isinstance(loc, int):
                parts[-1:] = [f"{parts[-1]}[{loc}]"] if parts else [f"[{loc}]"]
            elif loc not in ("str", "int", "bool", "float", "list", "dict", "function-after[_quantities()]"):
                if "[" in str(loc) and "]" in str(loc):
                    continue  # union branch labels such as "list[str]"
                parts.append(str(loc))
        field = ".".join(p for p in ([root] if root else []) + parts if p)
        if err["type"] == "missing":
            causes.append(required(field))
        else:
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": field,
                    "message": f"Invalid value: {_q(err.get('input'))}: {err['msg']}",
                }
            )
    # One cause per field: a union reports each branch that failed.
    unique: dict[str, Cause] = {}
    for cause in causes:
        unique.setdefault(cause["field"], cause)
    return list(unique.values())


def unknown_fields(model: K8sModel, path: str = "") -> list[str]:
    """Fields Kubernetes does not define, for ``fieldValidation=Strict``."""
    found: list[str] = []
    for key in model.model_extra or {}:
        if key not in type(model).known_fields:
            found.append(f"{path}.{key}" if path else key)
    for name in type(model).model_fields:
        value = getattr(model, name)
        child = f"{path}.{name}" if path else name
        if isinstance(value, K8sModel):
            found += unknown_fields(value, child)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, K8sModel):
                    found += unknown_fields(item, f"{child}[{index}]")
    return found


def validate_metadata(resource: Resource, meta: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    name = meta.get("name")
    if not name:
        if not meta.get("generateName"):
            causes.append(
                {
                    "reason": "FieldValueRequired",
                    "field": "metadata.name",
                    "message": "Required value: name or generateName is required",
                }
            )
    elif resource.plural != "events" and (problem := name_problem(name, _LABEL_NAMES.get(resource.plural, "sub"))):
        causes.append(invalid("metadata.name", name, problem))
    if resource.namespaced and meta.get("namespace"):
        if problem := name_problem(meta["namespace"], "label"):
            causes.append(invalid("metadata.namespace", meta["namespace"], problem))
    for key, value in (meta.get("labels") or {}).items():
        try:
            selectors.parse_labels(f"{key}={value}") if value else selectors._check_key(key)
        except selectors.SelectorError as exc:
            causes.append(invalid("metadata.labels", key if "key" in str(exc) else value, str(exc)))
    for key in meta.get("annotations") or {}:
        try:
            selectors._check_key(key)
        except selectors.SelectorError as exc:
            causes.append(invalid("metadata.annotations", key, str(exc)))
    total = sum(len(k) + len(v) for k, v in (meta.get("annotations") or {}).items())
    if total > 256 * 1024:
        causes.append(
            {
                "reason": "FieldValueTooLong",
                "field": "metadata.annotations",
                "message": "Too long: may not be more than 262144 bytes",
            }
        )
    return causes


RESTART_POLICIES = ("Always", "OnFailure", "Never")


def validate_pod_spec(spec: dict[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    containers = spec.get("containers") or []
    if not containers:
        causes.append(required(f"{path}.containers"))
    if spec.get("restartPolicy") not in RESTART_POLICIES:
        causes.append(unsupported(f"{path}.restartPolicy", spec.get("restartPolicy"), RESTART_POLICIES))
    seen: set[str] = set()
    for group in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(group) or []):
            where = f"{path}.{group}[{index}]"
            name = container.get("name", "")
            if problem := name_problem(name, "label"):
                causes.append(invalid(f"{where}.name", name, problem))
            if name in seen:
                causes.append(duplicate(f"{where}.name", name))
            seen.add(name)
            if not container.get("image"):
                causes.append(required(f"{where}.image"))
            for pindex, port in enumerate(container.get("ports") or []):
                number = port.get("containerPort")
                if not isinstance(number, int) or not 0 < number < 65536:
                    causes.append(
                        invalid(
                            f"{where}.ports[{pindex}].containerPort", number, "must be between 1 and 65535, inclusive"
                        )
                    )
            resources = container.get("resources") or {}
            for name_, value in (resources.get("requests") or {}).items():
                limit = (resources.get("limits") or {}).get(name_)
                if limit is not None and quantity.parse(value) > quantity.parse(limit):
                    causes.append(
                        invalid(
                            f"{where}.resources.requests",
                            value,
                            f"must be less than or equal to {name_} limit of {limit}",
                        )
                    )
    grace = spec.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and grace < 0:
        causes.append(invalid(f"{path}.terminationGracePeriodSeconds", grace, "must be greater than or equal to 0"))
    return causes


def _template(
    spec: dict[str, Any], selector: dict[str, Any] | None, path: str, *, restart: tuple[str, ...] = ("Always",)
) -> list[Cause]:
    causes: list[Cause] = []
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if selector is not None:
        if not (selector.get("matchLabels") or selector.get("matchExpressions")):
            causes.append(invalid(f"{path}.selector", selector, "empty selector is invalid for deployment"))
        else:
            try:
                if not selectors.from_label_selector(selector).matches(labels):
                    causes.append(
                        invalid(
                            f"{path}.template.metadata.labels", labels, "`selector` does not match template `labels`"
                        )
                    )
            except selectors.SelectorError as exc:
                causes.append(invalid(f"{path}.selector", selector, str(exc)))
    pod_spec = template.get("spec") or {}
    causes += validate_pod_spec(pod_spec, f"{path}.template.spec")
    if pod_spec.get("restartPolicy") in RESTART_POLICIES and pod_spec.get("restartPolicy") not in restart:
        causes.append(unsupported(f"{path}.template.spec.restartPolicy", pod_spec.get("restartPolicy"), restart))
    return causes


def _non_negative(spec: dict[str, Any], path: str, *fields: str) -> list[Cause]:
    return [
        invalid(f"{path}.{f}", spec[f], "must be greater than or equal to 0")
        for f in fields
        if isinstance(spec.get(f), int) and spec[f] < 0
    ]


def _int_or_percent(value: Any, replicas: int) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%") and value[:-1].isdigit():
        return int(value[:-1])
    raise ValueError


def validate_spec(resource: Resource, obj: dict[str, Any]) -> list[Cause]:
    spec = obj.get("spec") or {}
    plural = resource.plural
    if plural == "pods":
        return validate_pod_spec(spec, "spec")
    if plural in ("replicasets", "deployments"):
        causes = _non_negative(spec, "spec", "replicas", "minReadySeconds", "revisionHistoryLimit")
        causes += _template(spec, spec.get("selector"), "spec")
        strategy = spec.get("strategy") or {}
        if plural == "deployments" and strategy.get("type") not in (None, "RollingUpdate", "Recreate"):
            causes.append(unsupported("spec.strategy.type", strategy.get("type"), ("Recreate", "RollingUpdate")))
        rolling = strategy.get("rollingUpdate") or {}
        if plural == "deployments" and rolling:
            if strategy.get("type") == "Recreate":
                causes.append(
                    forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")
                )
            values = {}
            for key in ("maxSurge", "maxUnavailable"):
                if key in rolling and rolling[key] is not None:
                    try:
                        values[key] = _int_or_percent(rolling[key], spec.get("replicas", 1))
                    except ValueError:
                        causes.append(
                            invalid(
                                f"spec.strategy.rollingUpdate.{key}",
                                rolling[key],
                                "a valid percent string must be a numeric string followed by "
                                "an ending '%' (e.g. '1%',  or '93%')",
                            )
                        )
                        continue
                    if values[key] < 0:
                        causes.append(
                            invalid(
                                f"spec.strategy.rollingUpdate.{key}", rolling[key], "must be greater than or equal to 0"
                            )
                        )
            if isinstance(rolling.get("maxUnavailable"), str) and values.get("maxUnavailable", 0) > 100:
                causes.append(
                    invalid(
                        "spec.strategy.rollingUpdate.maxUnavailable",
                        rolling["maxUnavailable"],
                        "must not be greater than 100%",
                    )
                )
            if values.get("maxSurge", 1) == 0 and values.get("maxUnavailable", 1) == 0:
                causes.append(
                    invalid(
                        "spec.strategy.rollingUpdate.maxUnavailable",
                        rolling.get("maxUnavailable"),
                        "may not be 0 when `maxSurge` is 0",
                    )
                )
        return causes
    if plural == "jobs":
        causes = _non_negative(spec, "spec", "parallelism", "completions", "backoffLimit")
        if isinstance(spec.get("activeDeadlineSeconds"), int) and spec["activeDeadlineSeconds"] <= 0:
            causes.append(
                invalid("spec.activeDeadlineSeconds", spec["activeDeadlineSeconds"], "must be greater than 0")
            )
        selector = spec.get("selector") if spec.get("manualSelector") else None
        causes += _template(spec, selector, "spec", restart=("OnFailure", "Never"))
        return causes
    if plural in ("daemonsets", "statefulsets"):
        return validate_daemon_or_stateful(plural, spec)
    if plural == "cronjobs":
        return validate_cronjob(spec)
    if plural == "services":
        return validate_service(spec)
    if plural in ("configmaps", "secrets"):
        return validate_data(resource, obj)
    return []


DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def validate_data(resource: Resource, obj: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    fields = ("data", "binaryData") if resource.plural == "configmaps" else ("data",)
    seen: set[str] = set()
    for field in fields:
        for key, value in (obj.get(field) or {}).items():
            if len(key) > 253 or not DATA_KEY.match(key):
                causes.append(
                    invalid(
                        f"{field}[{key}]",
                        key,
                        "a valid config key must consist of alphanumeric "
                        "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or "
                        "'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                    )
                )
            if key in seen:
                causes.append(duplicate(f"{field}[{key}]", key))
            seen.add(key)
            if field == "binaryData" or resource.plural == "secrets":
                try:
                    base64.b64decode(value, validate=True)
                except (ValueError, TypeError):
                    causes.append(invalid(f"{field}[{key}]", "<value>", "illegal base64 data"))
    size = sum(len(k) + len(v) for f in fields for k, v in (obj.get(f) or {}).items())
    if size > 1024 * 1024:
        causes.append(
            {"reason": "FieldValueTooLong", "field": "data", "message": "Too long: must have at most 1048576 bytes"}
        )
    return causes


SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")


def validate_service(spec: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    if spec.get("type") not in SERVICE_TYPES:
        causes.append(unsupported("spec.type", spec.get("type"), SERVICE_TYPES))
    if spec.get("sessionAffinity") not in ("None", "ClientIP"):
        causes.append(unsupported("spec.sessionAffinity", spec.get("sessionAffinity"), ("ClientIP", "None")))
    ports = spec.get("ports") or []
    if not ports and spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None":
        causes.append(required("spec.ports"))
    names: set[str] = set()
    for index, port in enumerate(ports):
        where = f"spec.ports[{index}]"
        if not 0 < port.get("port", 0) < 65536:
            causes.append(invalid(f"{where}.port", port.get("port"), "must be between 1 and 65535, inclusive"))
        if port.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
            causes.append(unsupported(f"{where}.protocol", port.get("protocol"), ("SCTP", "TCP", "UDP")))
        if len(ports) > 1 and not port.get("name"):
            causes.append(required(f"{where}.name"))
        if port.get("name"):
            if port["name"] in names:
                causes.append(duplicate(f"{where}.name", port["name"]))
            names.add(port["name"])
        target = port.get("targetPort")
        if isinstance(target, int) and not 0 < target < 65536:
            causes.append(invalid(f"{where}.targetPort", target, "must be between 1 and 65535, inclusive"))
        node_port = port.get("nodePort")
        if node_port is not None and spec.get("type") not in ("NodePort", "LoadBalancer"):
            causes.append(forbidden(f"{where}.nodePort", "may not be used when `type` is 'ClusterIP'"))
    return causes


def validate_immutable(resource: Resource, old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    plural = resource.plural
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    if plural == "pods":
        mutable = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")
        strip = lambda s: {  # noqa: E731 - container images may change, nothing else
            **{k: v for k, v in s.items() if k not in mutable},
            "containers": [{k: v for k, v in c.items() if k != "image"} for c in s.get("containers") or []],
            "initContainers": [{k: v for k, v in c.items() if k != "image"} for c in s.get("initContainers") or []],
        }
        if strip(old_spec) != strip(new_spec):
            causes.append(
                forbidden(
                    "spec",
                    "pod updates may not change fields other than `spec.containers[*].image`, "
                    "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, "
                    "`spec.tolerations` (only additions to existing tolerations), "
                    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
                    "previously negative)",
                )
            )
    elif plural == "daemonsets" and old_spec.get("selector") != new_spec.get("selector"):
        causes.append(invalid("spec.selector", new_spec.get("selector"), "field is immutable"))
    elif plural == "statefulsets" and any(
        old_spec.get(f) != new_spec.get(f) for f in STATEFULSET_IMMUTABLE
    ):
        causes.append(
            forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
                "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "
                "'minReadySeconds' are forbidden",
            )
        )
    elif plural in ("replicasets", "deployments") and old_spec.get("selector") != new_spec.get("selector"):
        causes.append(invalid("spec.selector", new_spec.get("selector"), "field is immutable"))
    elif plural == "jobs":
        if old_spec.get("template") != new_spec.get("template"):
            causes.append(invalid("spec.template", new_spec.get("template"), "field is immutable"))
        if old_spec.get("completions") != new_spec.get("completions"):
            causes.append(invalid("spec.completions", new_spec.get("completions"), "field is immutable"))
    elif plural in ("configmaps", "secrets") and old.get("immutable"):
        for field in ("data", "binaryData", "immutable"):
            if old.get(field) != new.get(field):
                causes.append(forbidden(field, "field is immutable when `immutable` is set"))
    elif plural == "services":
        old_ip, new_ip = old_spec.get("clusterIP"), new_spec.get("clusterIP")
        if old_ip and new_ip and old_ip != new_ip:
            causes.append(invalid("spec.clusterIP", new_ip, "field is immutable"))
    return causes


#: What Kubernetes lets a StatefulSet update change is everything but these.
STATEFULSET_IMMUTABLE = ("selector", "serviceName", "podManagementPolicy", "volumeClaimTemplates")


def validate_daemon_or_stateful(plural: str, spec: dict[str, Any]) -> list[Cause]:
    """DaemonSets and StatefulSets: a matching template, and the strategies Kubernetes knows."""
    causes = _non_negative(spec, "spec", "replicas", "minReadySeconds", "revisionHistoryLimit")
    causes += _template(spec, spec.get("selector"), "spec")
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") not in (None, "RollingUpdate", "OnDelete"):
        causes.append(unsupported("spec.updateStrategy.type", strategy.get("type"), ("OnDelete", "RollingUpdate")))
    rolling = strategy.get("rollingUpdate") or {}
    if plural == "statefulsets":
        if spec.get("podManagementPolicy") not in (None, "OrderedReady", "Parallel"):
            causes.append(
                unsupported("spec.podManagementPolicy", spec.get("podManagementPolicy"), ("OrderedReady", "Parallel"))
            )
        causes += _non_negative(rolling, "spec.updateStrategy.rollingUpdate", "partition")
    elif rolling:
        for key in ("maxSurge", "maxUnavailable"):
            if rolling.get(key) is None:
                continue
            try:
                if _int_or_percent(rolling[key], 0) < 0:
                    causes.append(invalid(f"spec.updateStrategy.rollingUpdate.{key}", rolling[key],
                                          "must be greater than or equal to 0"))
            except ValueError:
                causes.append(invalid(f"spec.updateStrategy.rollingUpdate.{key}", rolling[key],
                                      "a valid percent string must be a numeric string followed by an ending '%'"))
    return causes


def validate_cronjob(spec: dict[str, Any]) -> list[Cause]:
    """A CronJob: a schedule and time zone the controller can follow, and a valid Job template."""
    causes: list[Cause] = []
    try:
        cron.parse(str(spec.get("schedule") or ""))
    except ValueError as exc:
        causes.append(invalid("spec.schedule", spec.get("schedule"), str(exc)))
    if spec.get("timeZone") is not None:
        try:
            cron.zone(str(spec["timeZone"]))
        except ValueError:
            causes.append(invalid("spec.timeZone", spec["timeZone"], "unknown time zone"))
        if "TZ" in str(spec.get("schedule") or ""):
            causes.append(invalid("spec.schedule", spec.get("schedule"),
                                  "cannot use both timeZone field and TZ or CRON_TZ in schedule"))
    if spec.get("concurrencyPolicy") not in (None, "Allow", "Forbid", "Replace"):
        causes.append(
            unsupported("spec.concurrencyPolicy", spec.get("concurrencyPolicy"), ("Allow", "Forbid", "Replace"))
        )
    causes += _non_negative(spec, "spec", "startingDeadlineSeconds", "successfulJobsHistoryLimit",
                            "failedJobsHistoryLimit")
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    causes += _non_negative(job_spec, "spec.jobTemplate.spec", "parallelism", "completions", "backoffLimit")
    selector = job_spec.get("selector") if job_spec.get("manualSelector") else None
    causes += _template(job_spec, selector, "spec.jobTemplate.spec", restart=("OnFailure", "Never"))
    return causes
