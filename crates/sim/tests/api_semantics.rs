//! Object semantics through the kube client and raw HTTP: CRUD, optimistic
//! concurrency, status isolation, generation, CRD validation, patches,
//! server-side apply, finalizers, garbage collection, dry runs, selectors,
//! pagination, discovery, OpenAPI and tables.

mod common;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

fn gb_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("sim.plumbline.dev", "v1alpha1", "GpuBaseline"),
        "gpubaselines",
    )
}

fn gb(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "sim.plumbline.dev/v1alpha1",
        "kind": "GpuBaseline",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("dynamic object")
}

fn api_err(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn crud_resource_versions_and_optimistic_concurrency() {
    let sim = start().await;
    let nodes: Api<Node> = Api::all(sim.client().await);
    let n: Node = serde_json::from_value(node("n1")).expect("node");
    let created = nodes
        .create(&PostParams::default(), &n)
        .await
        .expect("create");
    let rv1: u64 = created
        .metadata
        .resource_version
        .clone()
        .expect("rv")
        .parse()
        .expect("int rv");
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());

    let dup = api_err(
        nodes
            .create(&PostParams::default(), &n)
            .await
            .expect_err("duplicate"),
    );
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(dup.message, "nodes \"n1\" already exists");

    let mut changed = created.clone();
    changed
        .metadata
        .labels
        .get_or_insert_default()
        .insert("a".into(), "1".into());
    let updated = nodes
        .replace("n1", &PostParams::default(), &changed)
        .await
        .expect("update");
    let rv2: u64 = updated
        .metadata
        .resource_version
        .clone()
        .expect("rv")
        .parse()
        .expect("int");
    assert!(rv2 > rv1, "resourceVersion increases");

    // The stale copy (rv1) is refused with the real server's message.
    let stale = api_err(
        nodes
            .replace("n1", &PostParams::default(), &changed)
            .await
            .expect_err("stale"),
    );
    assert_eq!(stale.code, 409);
    assert_eq!(stale.reason, "Conflict");
    assert_eq!(
        stale.message,
        "Operation cannot be fulfilled on nodes \"n1\": the object has been modified; please apply your changes to the latest version and try again"
    );

    let missing = api_err(nodes.get("nope").await.expect_err("missing"));
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, "nodes \"nope\" not found");

    // Namespaced objects need an existing namespace.
    let cms: Api<ConfigMap> = Api::namespaced(sim.client().await, "ghost");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"k": "v"}})).expect("cm");
    let e = api_err(
        cms.create(&PostParams::default(), &cm)
            .await
            .expect_err("no namespace"),
    );
    assert_eq!(e.message, "namespaces \"ghost\" not found");

    nodes
        .delete("n1", &DeleteParams::default())
        .await
        .expect("delete");
    assert!(nodes.get_opt("n1").await.expect("get_opt").is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn custom_resources_status_isolation_generation_defaults_and_validation() {
    let sim = start_with_fixture().await;
    let api: Api<DynamicObject> = Api::all_with(sim.client().await, &gb_resource());
    let mut obj = gb("n1", json!({"nodeName": "n1"}));
    obj.data["status"] = json!({"verdict": "Compliant"});
    let created = api
        .create(&PostParams::default(), &obj)
        .await
        .expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(
        created.data["spec"]["kernelModule"], "auto",
        "schema default applied"
    );
    assert!(
        created.data.get("status").is_none(),
        "status is dropped on create"
    );

    // /status writes change only status and do not bump generation.
    let mut with_status = created.clone();
    with_status.data["status"] =
        json!({"verdict": "Drifting", "gpus": [{"index": 0, "product": "H100"}]});
    with_status.data["spec"]["nodeName"] = json!("ignored");
    let st = api
        .replace_status("n1", &PostParams::default(), &with_status)
        .await
        .expect("replace status");
    assert_eq!(st.data["status"]["verdict"], "Drifting");
    assert_eq!(st.data["spec"]["nodeName"], "n1");
    assert_eq!(st.metadata.generation, Some(1));

    // Main-resource writes ignore status; spec changes bump generation.
    let mut main = st.clone();
    main.data["status"] = json!({"verdict": "Unknown"});
    main.data["spec"]["maxUnavailable"] = json!(3);
    let m = api
        .replace("n1", &PostParams::default(), &main)
        .await
        .expect("replace");
    assert_eq!(m.data["status"]["verdict"], "Drifting");
    assert_eq!(m.metadata.generation, Some(2));

    // Schema errors: 422 with causes, worded as the real server.
    let bad = gb(
        "bad",
        json!({"nodeName": "n1", "kernelModule": "nouveau", "maxUnavailable": 500}),
    );
    let e = api_err(
        api.create(&PostParams::default(), &bad)
            .await
            .expect_err("invalid"),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(
        e.message
            .starts_with("GpuBaseline.sim.plumbline.dev \"bad\" is invalid: "),
        "{}",
        e.message
    );
    assert!(
        e.message
            .contains("spec.kernelModule: Unsupported value: \"nouveau\""),
        "{}",
        e.message
    );
    assert!(e.message.contains("spec.maxUnavailable"), "{}", e.message);

    // CEL rule.
    let cel = gb(
        "cel",
        json!({"nodeName": "n1", "kernelModule": "proprietary", "minDriver": "470.1"}),
    );
    let e = api_err(
        api.create(&PostParams::default(), &cel)
            .await
            .expect_err("cel"),
    );
    assert!(
        e.message
            .contains("the proprietary module needs a 5xx driver"),
        "{}",
        e.message
    );

    // Unknown fields: pruned (Warn), or refused with fieldValidation=Strict.
    let extra = gb("extra", json!({"nodeName": "n1", "bogus": 1}));
    let kept = api
        .create(&PostParams::default(), &extra)
        .await
        .expect("warn create");
    assert!(
        kept.data["spec"].get("bogus").is_none(),
        "unknown field pruned"
    );
    let (code, _, body) = raw_request(
        sim.addr(),
        "POST",
        "/apis/sim.plumbline.dev/v1alpha1/gpubaselines?fieldValidation=Strict",
        &[("Content-Type", "application/json")],
        &json!({"apiVersion": "sim.plumbline.dev/v1alpha1", "kind": "GpuBaseline",
                "metadata": {"name": "strict"}, "spec": {"nodeName": "n1", "bogus": 1}})
        .to_string(),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("unknown field \\\"spec.bogus\\\""), "{body}");

    // A custom-resource update without resourceVersion is refused.
    let mut no_rv = m.clone();
    no_rv.metadata.resource_version = None;
    let e = api_err(
        api.replace("n1", &PostParams::default(), &no_rv)
            .await
            .expect_err("no rv"),
    );
    assert_eq!(e.code, 422);
    sim.shutdown().await;
}

#[tokio::test]
async fn patches_merge_json_strategic_and_stale_resource_version() {
    let sim = start_with_fixture().await;
    let client = sim.client().await;
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(node("n1")).expect("node"),
        )
        .await
        .expect("create");
    let pp = PatchParams::default();
    let n = nodes
        .patch(
            "n1",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"plumbline.dev/compliant": "true"}}})),
        )
        .await
        .expect("merge");
    assert_eq!(
        n.labels()
            .get("plumbline.dev/compliant")
            .map(String::as_str),
        Some("true")
    );

    let n = nodes
        .patch("n1", &pp, &Patch::Strategic(json!({"spec": {"taints": [{"key": "plumbline.dev/drift", "effect": "NoSchedule"}]}})))
        .await
        .expect("strategic");
    let taints = n
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    assert_eq!(taints.len(), 1);
    assert_eq!(
        n.metadata.generation,
        Some(2),
        "spec change bumps generation"
    );

    let (code, _, body) = raw_request(
        sim.addr(),
        "PATCH",
        "/api/v1/nodes/n1",
        &[("Content-Type", "application/json-patch+json")],
        &json!([{"op": "add", "path": "/spec/unschedulable", "value": true}]).to_string(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let n = nodes.get("n1").await.expect("get");
    assert_eq!(n.spec.as_ref().and_then(|s| s.unschedulable), Some(true));

    // A patch carrying a stale resourceVersion conflicts.
    let e = api_err(
        nodes
            .patch(
                "n1",
                &pp,
                &Patch::Merge(
                    json!({"metadata": {"resourceVersion": "1"}, "spec": {"unschedulable": false}}),
                ),
            )
            .await
            .expect_err("stale patch"),
    );
    assert_eq!(e.code, 409);

    // Status patches reach status only.
    let n = nodes
        .patch_status("n1", &pp, &Patch::Merge(json!({"status": {"nodeInfo": {"kubeletVersion": "v1.33.1"}}, "spec": {"unschedulable": false}})))
        .await
        .expect("status patch");
    assert_eq!(
        n.status
            .and_then(|s| s.node_info)
            .map(|i| i.kubelet_version)
            .as_deref(),
        Some("v1.33.1")
    );
    assert_eq!(n.spec.and_then(|s| s.unschedulable), Some(true));

    // Strategic merge patch is not accepted for custom resources (415).
    let api: Api<DynamicObject> = Api::all_with(client, &gb_resource());
    api.create(&PostParams::default(), &gb("n1", json!({"nodeName": "n1"})))
        .await
        .expect("create gb");
    let e = api_err(
        api.patch(
            "n1",
            &pp,
            &Patch::Strategic(json!({"spec": {"maxUnavailable": 1}})),
        )
        .await
        .expect_err("smp on CR"),
    );
    assert_eq!(e.code, 415);
    let cr = api
        .patch(
            "n1",
            &pp,
            &Patch::Merge(json!({"spec": {"maxUnavailable": 1}})),
        )
        .await
        .expect("merge on CR");
    assert_eq!(cr.data["spec"]["maxUnavailable"], 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn server_side_apply_conflicts_and_force() {
    let sim = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(sim.client().await, "default");
    let a = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"driver": "580"}});
    let created = cms
        .patch("cfg", &PatchParams::apply("alice"), &Patch::Apply(&a))
        .await
        .expect("apply creates");
    assert_eq!(
        created
            .data
            .as_ref()
            .and_then(|d| d.get("driver"))
            .map(String::as_str),
        Some("580")
    );
    let mf = created.metadata.managed_fields.clone().unwrap_or_default();
    assert!(
        mf.iter()
            .any(|m| m.manager.as_deref() == Some("alice")
                && m.operation.as_deref() == Some("Apply"))
    );

    let b = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"driver": "570"}});
    let e = api_err(
        cms.patch("cfg", &PatchParams::apply("bob"), &Patch::Apply(&b))
            .await
            .expect_err("conflict"),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert!(
        e.message.contains("conflict with \"alice\""),
        "{}",
        e.message
    );

    let forced = cms
        .patch("cfg", &PatchParams::apply("bob").force(), &Patch::Apply(&b))
        .await
        .expect("force");
    assert_eq!(
        forced
            .data
            .and_then(|d| d.get("driver").cloned())
            .as_deref(),
        Some("570")
    );

    // Apply without a field manager is a bad request.
    let (code, _, body) = raw_request(
        sim.addr(),
        "PATCH",
        "/api/v1/namespaces/default/configmaps/cfg",
        &[("Content-Type", "application/apply-patch+yaml")],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  driver: \"1\"\n",
    )
    .await;
    assert_eq!(code, 400, "{body}");
    // YAML apply bodies work.
    let (code, _, body) = raw_request(
        sim.addr(),
        "PATCH",
        "/api/v1/namespaces/default/configmaps/cfg?fieldManager=carol&force=true",
        &[("Content-Type", "application/apply-patch+yaml")],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  extra: \"yes\"\n",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["data"]["extra"], "yes");
    sim.shutdown().await;
}

#[tokio::test]
async fn finalizers_owner_gc_namespace_deletion_and_dry_run() {
    let sim = start_with_fixture().await;
    let client = sim.client().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let n = nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(node("gpu-1")).expect("node"),
        )
        .await
        .expect("node");
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &gb_resource());
    let mut owned = gb("gpu-1", json!({"nodeName": "gpu-1"}));
    owned.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: "gpu-1".into(),
            uid: n.metadata.uid.clone().expect("uid"),
            ..Default::default()
        },
    ]);
    api.create(&PostParams::default(), &owned)
        .await
        .expect("owned");

    // dryRun changes nothing.
    let dp = DeleteParams {
        dry_run: true,
        ..DeleteParams::default()
    };
    nodes.delete("gpu-1", &dp).await.expect("dry-run delete");
    assert!(nodes.get_opt("gpu-1").await.expect("get").is_some());
    let pp = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    api.create(&pp, &gb("dry", json!({"nodeName": "x"})))
        .await
        .expect("dry create");
    assert!(api.get_opt("dry").await.expect("get").is_none());

    // Deleting the Node garbage-collects the baseline it owns.
    nodes
        .delete("gpu-1", &DeleteParams::default())
        .await
        .expect("delete node");
    assert!(
        api.get_opt("gpu-1").await.expect("get").is_none(),
        "dependent collected"
    );

    // Finalizers hold deletion until removed.
    let mut f = gb("held", json!({"nodeName": "x"}));
    f.metadata.finalizers = Some(vec!["plumbline.dev/test".into()]);
    api.create(&PostParams::default(), &f)
        .await
        .expect("create");
    api.delete("held", &DeleteParams::default())
        .await
        .expect("delete");
    let held = api.get("held").await.expect("still there");
    assert!(held.metadata.deletion_timestamp.is_some());
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("remove finalizer");
    assert!(
        api.get_opt("held").await.expect("get").is_none(),
        "gone once finalizers are empty"
    );

    // Deleting a namespace deletes what is in it.
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "team"}})).expect("ns"),
    )
    .await
    .expect("ns");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "c"}})).expect("cm"),
    )
    .await
    .expect("cm");
    nss.delete("team", &DeleteParams::default())
        .await
        .expect("delete ns");
    assert!(
        sim.store()
            .get("v1", "ConfigMap", Some("team"), "c")
            .is_none()
    );
    assert!(nss.get_opt("default").await.expect("get").is_some());

    // Deleting the CRD removes its objects and stops serving the resource.
    api.create(
        &PostParams::default(),
        &gb("left", json!({"nodeName": "x"})),
    )
    .await
    .expect("create");
    sim.store()
        .delete(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            "gpubaselines.sim.plumbline.dev",
        )
        .expect("delete crd");
    let e = api_err(api.list(&ListParams::default()).await.expect_err("gone"));
    assert_eq!(e.code, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn selectors_pagination_and_expired_continue() {
    let sim = start().await;
    for i in 0..25 {
        let mut n = node(&format!("n{i:02}"));
        n["metadata"]["labels"]["pool"] = json!(if i % 2 == 0 { "a" } else { "b" });
        if i == 3 {
            n["spec"]["unschedulable"] = json!(true);
        }
        sim.store().create(n).expect("seed");
    }
    let nodes: Api<Node> = Api::all(sim.client().await);
    let count = |lp: ListParams| {
        let nodes = nodes.clone();
        async move { nodes.list(&lp).await.expect("list").items.len() }
    };
    assert_eq!(count(ListParams::default().labels("pool=a")).await, 13);
    assert_eq!(
        count(ListParams::default().labels("pool in (a,b),pool!=a")).await,
        12
    );
    assert_eq!(
        count(ListParams::default().labels("pool notin (a)")).await,
        12
    );
    assert_eq!(count(ListParams::default().labels("!pool")).await, 0);
    assert_eq!(count(ListParams::default().labels("pool")).await, 25);
    assert_eq!(
        count(ListParams::default().fields("metadata.name=n07")).await,
        1
    );
    assert_eq!(
        count(ListParams::default().fields("spec.unschedulable=true")).await,
        1
    );
    assert_eq!(
        count(ListParams::default().fields("spec.unschedulable!=true")).await,
        24
    );

    let page1 = nodes
        .list(&ListParams::default().limit(10))
        .await
        .expect("page 1");
    assert_eq!(page1.items.len(), 10);
    let token = page1.metadata.continue_.clone().expect("continue token");
    assert_eq!(page1.metadata.remaining_item_count, Some(15));
    let page2 = nodes
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await
        .expect("page 2");
    assert_eq!(page2.items[0].metadata.name.as_deref(), Some("n10"));

    sim.faults().expire_next_watch();
    let e = api_err(
        nodes
            .list(&ListParams::default().limit(10).continue_token(&token))
            .await
            .expect_err("expired"),
    );
    assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
    sim.shutdown().await;
}

#[tokio::test]
async fn discovery_openapi_version_tables_and_health() {
    let sim = start_with_fixture().await;
    let addr = sim.addr();
    let (code, _, body) = raw_request(addr, "GET", "/version", &[], "").await;
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["gitVersion"],
        "v1.33.0"
    );
    for p in ["/healthz", "/readyz", "/livez"] {
        let (code, _, body) = raw_request(addr, "GET", p, &[], "").await;
        assert_eq!((code, body.as_str()), (200, "ok"));
    }

    let (_, head, body) = raw_request(
        addr,
        "GET",
        "/apis",
        &[(
            "Accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )],
        "",
    )
    .await;
    assert!(
        head.to_ascii_lowercase()
            .contains("as=apigroupdiscoverylist"),
        "{head}"
    );
    let agg: Value = serde_json::from_str(&body).expect("json");
    let ours = agg["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|g| g["metadata"]["name"] == "sim.plumbline.dev")
        .expect("CRD group served");
    let res = &ours["versions"][0]["resources"][0];
    assert_eq!(res["resource"], "gpubaselines");
    assert_eq!(res["scope"], "Cluster");
    assert_eq!(res["shortNames"][0], "gb");
    assert_eq!(res["subresources"][0]["subresource"], "status");

    let (_, _, body) = raw_request(addr, "GET", "/apis/sim.plumbline.dev/v1alpha1", &[], "").await;
    let l: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(l["resources"][0]["name"], "gpubaselines");

    let (_, _, body) = raw_request(addr, "GET", "/openapi/v3", &[], "").await;
    let idx: Value = serde_json::from_str(&body).expect("json");
    let url = idx["paths"]["apis/sim.plumbline.dev/v1alpha1"]["serverRelativeURL"]
        .as_str()
        .expect("crd gv in openapi index")
        .to_string();
    let (code, _, body) = raw_request(addr, "GET", &url, &[], "").await;
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_str(&body).expect("json");
    let schema = &doc["components"]["schemas"]["dev.plumbline.sim.v1alpha1.GpuBaseline"];
    assert_eq!(
        schema["x-kubernetes-group-version-kind"][0]["kind"],
        "GpuBaseline"
    );
    assert_eq!(
        schema["properties"]["spec"]["properties"]["kernelModule"]["enum"][1],
        "proprietary"
    );

    // Tables: printer columns for CRDs, the familiar columns for nodes.
    let mut n = node("tbl");
    n["spec"]["unschedulable"] = json!(true);
    sim.store().create(n).expect("node");
    let api: Api<DynamicObject> = Api::all_with(sim.client().await, &gb_resource());
    api.create(
        &PostParams::default(),
        &gb("tbl", json!({"nodeName": "tbl"})),
    )
    .await
    .expect("gb");
    api.patch_status(
        "tbl",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"observed": {"driver": {"version": "580.65.06"}},
                                        "gpus": [{"index": 0, "product": "H100"}, {"index": 1, "product": "H100"}]}})),
    )
    .await
    .expect("status");
    let table_accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let (_, _, body) = raw_request(
        addr,
        "GET",
        "/apis/sim.plumbline.dev/v1alpha1/gpubaselines",
        &[("Accept", table_accept)],
        "",
    )
    .await;
    let t: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(t["kind"], "Table");
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .expect("cols")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        cols,
        vec!["Name", "Driver", "Module", "GPUs", "Verdict", "Age"]
    );
    let cells = &t["rows"][0]["cells"];
    assert_eq!(cells[0], "tbl");
    assert_eq!(cells[1], "580.65.06");
    assert_eq!(cells[2], "auto");
    assert_eq!(cells[3], "H100,H100");
    assert!(cells[5].as_str().expect("age").ends_with('s'));
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");

    let (_, _, body) = raw_request(
        addr,
        "GET",
        "/api/v1/nodes/tbl",
        &[("Accept", table_accept)],
        "",
    )
    .await;
    let t: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(t["rows"][0]["cells"][1], "Ready,SchedulingDisabled");
    assert_eq!(t["rows"][0]["cells"][2], "<none>");
    assert_eq!(t["rows"][0]["cells"][4], "v1.33.0");

    // Unknown paths and protobuf-only accepts.
    let (code, _, _) = raw_request(addr, "GET", "/apis/nope.example/v1/things", &[], "").await;
    assert_eq!(code, 404);
    let (code, _, _) = raw_request(
        addr,
        "GET",
        "/api/v1/nodes",
        &[("Accept", "application/vnd.kubernetes.protobuf")],
        "",
    )
    .await;
    assert_eq!(code, 406);
    let (code, _, _) = raw_request(
        addr,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &[("Content-Type", "application/vnd.kubernetes.protobuf")],
        "x",
    )
    .await;
    assert_eq!(code, 415);
    sim.shutdown().await;
}

#[tokio::test]
async fn watch_wire_format_expired_bookmarks_and_streaming_lists() {
    let sim = plumbline_sim::Sim::start(plumbline_sim::SimConfig {
        history: 5,
        bookmark_interval: std::time::Duration::from_millis(200),
        ..Default::default()
    })
    .await
    .expect("start");
    sim.store().create(node("w1")).expect("seed");
    let rv0 = sim.store().resource_version();
    for i in 0..10 {
        sim.store()
            .merge_patch(
                "v1",
                "Node",
                None,
                "w1",
                &json!({"metadata": {"labels": {"i": i.to_string()}}}),
                false,
            )
            .expect("patch");
    }
    // Older than retained history: HTTP 200, then one ERROR event with a 410 Status.
    let (code, _, body) = raw_request(
        sim.addr(),
        "GET",
        &format!("/api/v1/nodes?watch=true&resourceVersion={rv0}"),
        &[],
        "",
    )
    .await;
    assert_eq!(code, 200);
    let ev: Value = serde_json::from_str(body.lines().next().expect("one line")).expect("json");
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["kind"], "Status");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");

    // Within history: replay, then bookmarks until timeoutSeconds.
    let recent = sim.store().resource_version() - 2;
    let (_, head, body) = raw_request(
        sim.addr(),
        "GET",
        &format!("/api/v1/nodes?watch=1&resourceVersion={recent}&allowWatchBookmarks=true&timeoutSeconds=1"),
        &[],
        "",
    )
    .await;
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
    );
    let events: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    assert_eq!(events.iter().filter(|e| e["type"] == "MODIFIED").count(), 2);
    assert!(events.iter().any(|e| e["type"] == "BOOKMARK"), "{body}");

    // Streaming list: ADDED for the current state, then the end bookmark.
    let (_, _, body) = raw_request(
        sim.addr(),
        "GET",
        "/api/v1/nodes?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1",
        &[],
        "",
    )
    .await;
    let events: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[1]["type"], "BOOKMARK");
    assert_eq!(
        events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    sim.shutdown().await;
}
