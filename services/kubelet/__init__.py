"""The kubelet: the node agent (``redkube kubelet``) and the hollow nodes (``redkube hollow-nodes``).

- ``main``: settings, the Kubelet (informers, dispatcher of pod workers), node + lease loops.
- ``node``: the Node object, its status heartbeat and the node Lease (shared with ``hollow``).
- ``podworkers``: one worker per pod: start/restart containers, probes, deletion, status.
- ``status``: phase, conditions and container statuses as Kubernetes computes them.
- ``containers`` + ``shim``: container runs as shim processes, re-adopted after a restart.
- ``logstream``: log files tailed into the Redis log streams ``kubectl logs`` reads.
- ``environment``, ``probes``, ``ipam``: env vars/command expansion, probes, pod addresses.
- ``simulated`` + ``hollow``: the simulated runtime and many simulated nodes in one process.
"""
