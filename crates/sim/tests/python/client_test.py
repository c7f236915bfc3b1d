"""The official Python `kubernetes` client against a running emulator.

Run by tests/python_client.rs with the emulator's kubeconfig in
KUBECONFIG. Exits non-zero with a message on the first failed check.
"""

import json
import sys
import threading
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def main():
    config.load_kube_config()
    core = client.CoreV1Api()
    custom = client.CustomObjectsApi()
    version = client.VersionApi().get_code()
    check(version.git_version == "v1.33.0", "version reports v1.33.0")

    # list
    nodes = core.list_node()
    names = sorted(n.metadata.name for n in nodes.items)
    check(names == ["py-0", "py-1", "py-2"], f"list nodes: {names}")
    sel = core.list_node(label_selector="pool=a")
    check(len(sel.items) == 2, "label selector")
    page = core.list_node(limit=2)
    check(len(page.items) == 2 and page.metadata._continue, "limit gives a continue token")
    rest = core.list_node(limit=2, _continue=page.metadata._continue)
    check([n.metadata.name for n in rest.items] == ["py-2"], "continue returns the rest")

    # watch: a background patch shows up as MODIFIED
    rv = nodes.metadata.resource_version

    def later():
        time.sleep(0.5)
        core.patch_node("py-1", {"metadata": {"labels": {"seen": "yes"}}})

    threading.Thread(target=later, daemon=True).start()
    w = watch.Watch()
    got = None
    for ev in w.stream(core.list_node, resource_version=rv, timeout_seconds=10):
        if ev["type"] == "MODIFIED" and ev["object"].metadata.name == "py-1":
            got = ev["object"]
            w.stop()
    check(got is not None and got.metadata.labels.get("seen") == "yes", "watch sees the patch")

    # patch (strategic merge is the python default for core objects), status patch
    n = core.patch_node("py-0", {"spec": {"taints": [{"key": "plumbline.dev/drift", "effect": "NoSchedule"}]}})
    check(n.spec.taints and n.spec.taints[0].key == "plumbline.dev/drift", "patch node taints")
    n = core.patch_node_status("py-0", {"status": {"nodeInfo": {"kubeletVersion": "v1.33.9"}}})
    check(n.status.node_info.kubelet_version == "v1.33.9", "patch node status")

    # conflict on a stale resourceVersion
    stale = core.read_node("py-2")
    core.patch_node("py-2", {"metadata": {"labels": {"bump": "1"}}})
    stale.metadata.labels["x"] = "y"
    try:
        core.replace_node("py-2", stale)
        check(False, "stale replace must conflict")
    except ApiException as e:
        body = json.loads(e.body)
        check(e.status == 409 and body["reason"] == "Conflict", "stale replace gets 409 Conflict")

    # custom objects: create, merge patch, invalid object rejected
    group, version, plural = "sim.plumbline.dev", "v1alpha1", "gpubaselines"
    obj = {
        "apiVersion": f"{group}/{version}",
        "kind": "GpuBaseline",
        "metadata": {"name": "py-0"},
        "spec": {"nodeName": "py-0"},
    }
    created = custom.create_cluster_custom_object(group, version, plural, obj)
    check(created["spec"]["kernelModule"] == "auto", "custom object defaulted")
    patched = custom.patch_cluster_custom_object(group, version, plural, "py-0", {"spec": {"kernelModule": "open"}})
    check(patched["spec"]["kernelModule"] == "open", "custom object merge patch")
    listed = custom.list_cluster_custom_object(group, version, plural)
    check(len(listed["items"]) == 1, "list custom objects")
    try:
        bad = dict(obj, metadata={"name": "bad"}, spec={"nodeName": "x", "kernelModule": "nouveau"})
        custom.create_cluster_custom_object(group, version, plural, bad)
        check(False, "invalid custom object must be rejected")
    except ApiException as e:
        body = json.loads(e.body)
        check(e.status == 422 and "spec.kernelModule" in body["message"], "invalid custom object gets 422")

    # a custom-object watch
    w = watch.Watch()
    seen = []
    for ev in w.stream(custom.list_cluster_custom_object, group, version, plural, timeout_seconds=2):
        seen.append((ev["type"], ev["object"]["metadata"]["name"]))
        w.stop()
    check(seen == [("ADDED", "py-0")], f"custom object watch: {seen}")
    print("python client: all checks passed")


if __name__ == "__main__":
    main()
