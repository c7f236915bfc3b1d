//! OpenAPI v3: the `/openapi/v3` index and one document per group version.
//!
//! kubectl (1.27+) reads these to decide whether the server validates
//! fields itself: it looks for the PATCH operation tagged with
//! `x-kubernetes-group-version-kind` and a `fieldValidation` query
//! parameter. When found, it sends `fieldValidation=Strict` and lets the
//! server reject unknown fields, so `kubectl apply` works with default
//! validation. Built-in PATCH operations deliberately omit
//! `application/strategic-merge-patch+json` from their request bodies, so
//! kubectl computes strategic merge patches from its compiled-in types
//! rather than from these (minimal) built-in schemas. Custom resources get
//! their full CRD schema.

use serde_json::{Map, Value, json};

use crate::resources::{Registry, ResourceDef};
use crate::util::fnv64;

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

fn schema_name(d: &ResourceDef) -> String {
    if d.is_custom() {
        let mut parts: Vec<&str> = d.group.split('.').collect();
        parts.reverse();
        format!("{}.{}.{}", parts.join("."), d.version, d.kind)
    } else {
        let g = if d.group.is_empty() {
            "core"
        } else {
            d.group.split('.').next().unwrap_or("core")
        };
        format!("io.k8s.api.{g}.{}.{}", d.version, d.kind)
    }
}

fn gvk(d: &ResourceDef) -> Value {
    json!({"group": d.group, "version": d.version, "kind": d.kind})
}

fn query_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description,
           "schema": {"type": "string", "uniqueItems": true}})
}

fn ok_response(schema: &str) -> Value {
    let r = json!({"$ref": format!("#/components/schemas/{schema}")});
    json!({"200": {"description": "OK", "content": {
        "application/json": {"schema": r},
        "application/yaml": {"schema": r},
    }}})
}

fn operation(
    d: &ResourceDef,
    action: &str,
    op_id: &str,
    params: Vec<Value>,
    body: Option<Value>,
) -> Value {
    let mut op = json!({
        "tags": [if d.group.is_empty() { "core_v1".to_string() } else { format!("{}_{}", d.group.replace('.', "_"), d.version) }],
        "description": format!("{action} {}", d.kind),
        "operationId": op_id,
        "parameters": params,
        "responses": ok_response(&schema_name(d)),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(d),
    });
    if let Some(b) = body {
        op["requestBody"] = b;
    }
    op
}

fn write_params() -> Vec<Value> {
    vec![
        query_param(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
        ),
        query_param(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        query_param(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.",
        ),
    ]
}

fn paths_for(d: &ResourceDef, paths: &mut Map<String, Value>) {
    let base = d.gv_path();
    let (coll, item) = if d.namespaced {
        (
            format!("{base}/namespaces/{{namespace}}/{}", d.plural),
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", d.plural),
        )
    } else {
        (
            format!("{base}/{}", d.plural),
            format!("{base}/{}/{{name}}", d.plural),
        )
    };
    let schema_ref = json!({"$ref": format!("#/components/schemas/{}", schema_name(d))});
    let json_body = json!({"content": {"application/json": {"schema": schema_ref}, "application/yaml": {"schema": schema_ref}}, "required": true});
    let mut patch_content = json!({
        "application/json-patch+json": {"schema": {"type": "object"}},
        "application/merge-patch+json": {"schema": {"type": "object"}},
        "application/apply-patch+yaml": {"schema": {"type": "object"}},
    });
    let _ = &mut patch_content;
    let patch_body = json!({"content": patch_content, "required": true});
    let mut patch_params = write_params();
    patch_params.push(query_param(
        "force",
        "Force is going to \"force\" Apply requests.",
    ));
    let kind = &d.kind;
    paths.insert(
        coll.clone(),
        json!({
            "get": operation(d, "list", &format!("list{kind}"), vec![
                query_param("labelSelector", "A selector to restrict the list of returned objects by their labels."),
                query_param("fieldSelector", "A selector to restrict the list of returned objects by their fields."),
                query_param("limit", "limit is a maximum number of responses to return for a list call."),
                query_param("continue", "The continue option should be set when retrieving more results from the server."),
                query_param("resourceVersion", "resourceVersion sets a constraint on what resource versions a request may be served from."),
                query_param("watch", "Watch for changes to the described resources."),
            ], None),
            "post": operation(d, "post", &format!("create{kind}"), write_params(), Some(json_body.clone())),
            "delete": operation(d, "deletecollection", &format!("deletecollection{kind}"), vec![], None),
        }),
    );
    paths.insert(
        item.clone(),
        json!({
            "get": operation(d, "get", &format!("read{kind}"), vec![], None),
            "put": operation(d, "put", &format!("replace{kind}"), write_params(), Some(json_body.clone())),
            "patch": operation(d, "patch", &format!("patch{kind}"), patch_params.clone(), Some(patch_body.clone())),
            "delete": operation(d, "delete", &format!("delete{kind}"), write_params(), None),
        }),
    );
    if d.status {
        paths.insert(
            format!("{item}/status"),
            json!({
                "get": operation(d, "get", &format!("read{kind}Status"), vec![], None),
                "put": operation(d, "put", &format!("replace{kind}Status"), write_params(), Some(json_body)),
                "patch": operation(d, "patch", &format!("patch{kind}Status"), patch_params, Some(patch_body)),
            }),
        );
    }
}

fn component(d: &ResourceDef) -> Value {
    let gvk_ext = json!([gvk(d)]);
    let mut s = match &d.crd {
        Some(c) if c.raw_schema.is_object() => c.raw_schema.clone(),
        _ => json!({
            "type": "object",
            "description": format!("{} (schema not published by the emulator)", d.kind),
            "x-kubernetes-preserve-unknown-fields": true,
        }),
    };
    if let Some(m) = s.as_object_mut() {
        m.insert("x-kubernetes-group-version-kind".into(), gvk_ext);
        let props = m.entry("properties").or_insert_with(|| json!({}));
        if let Some(p) = props.as_object_mut() {
            p.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
            p.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
            p.insert("metadata".into(), json!({"allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}], "default": {}, "description": "Standard object's metadata."}));
        }
    }
    s
}

fn object_meta() -> Value {
    let str_map =
        json!({"type": "object", "additionalProperties": {"type": "string", "default": ""}});
    json!({
        "type": "object",
        "description": "ObjectMeta is metadata that all persisted resources must have.",
        "properties": {
            "name": {"type": "string"},
            "generateName": {"type": "string"},
            "namespace": {"type": "string"},
            "uid": {"type": "string"},
            "resourceVersion": {"type": "string"},
            "generation": {"type": "integer", "format": "int64"},
            "creationTimestamp": {"type": "string", "format": "date-time"},
            "deletionTimestamp": {"type": "string", "format": "date-time"},
            "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
            "labels": str_map,
            "annotations": str_map,
            "finalizers": {"type": "array", "items": {"type": "string", "default": ""}, "x-kubernetes-list-type": "set"},
            "ownerReferences": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                                "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["uid"]},
            "managedFields": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
        },
    })
}

/// The document for one group version, or None if it is not served.
pub(crate) fn gv_document(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let defs = reg.in_group_version(group, version);
    if defs.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(OBJECT_META.into(), object_meta());
    for d in &defs {
        paths_for(d, &mut paths);
        schemas.insert(schema_name(d), component(d));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// A Swagger 2.0 document with no paths or definitions. kubectl 1.27 and
/// 1.28 load `/openapi/v2` (as protobuf) before applying; an empty document
/// means "no client-side schema", and field validation is then left to the
/// server through the OpenAPI v3 `fieldValidation` parameter.
pub(crate) fn v2_json() -> Value {
    json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.33.0"}, "paths": {}, "definitions": {}})
}

/// [`v2_json`] as a gnostic `openapi.v2.Document` protobuf: field 1
/// `swagger`, field 2 `info` { 1 `title`, 2 `version` }.
pub(crate) fn v2_protobuf() -> Vec<u8> {
    fn field(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
        out.push((number << 3) | 2);
        out.push(u8::try_from(bytes.len()).expect("invariant: short strings only"));
        out.extend_from_slice(bytes);
    }
    let mut info = Vec::new();
    field(&mut info, 1, b"Kubernetes");
    field(&mut info, 2, b"v1.33.0");
    let mut doc = Vec::new();
    field(&mut doc, 1, b"2.0");
    field(&mut doc, 2, &info);
    doc
}

/// The `?hash=` of a group version's document. Documents change only when
/// the set of served resources does, so the hash is derived from the
/// registry's generation (and a per-server nonce, so two emulators on the
/// same port never share kubectl's HTTP cache entries) instead of from the
/// document's bytes.
pub(crate) fn doc_hash(tag: &str, group: &str, version: &str) -> String {
    format!(
        "{:016X}",
        fnv64(format!("{tag}/{group}/{version}").as_bytes())
    )
}

/// `/openapi/v3`: each served group version's document URL.
pub(crate) fn index(reg: &Registry, tag: &str) -> Value {
    let mut paths = Map::new();
    for (g, vs) in reg.groups() {
        for v in vs {
            let key = if g.is_empty() {
                format!("api/{v}")
            } else {
                format!("apis/{g}/{v}")
            };
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", doc_hash(tag, &g, &v))}),
            );
        }
    }
    json!({"paths": paths})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_operations_advertise_field_validation() {
        let reg = Registry::with_builtins();
        let doc = gv_document(&reg, "", "v1").expect("core v1");
        let patch = &doc["paths"]["/api/v1/nodes/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Node");
        assert!(
            patch["parameters"]
                .as_array()
                .expect("params")
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(
            index(&reg, "t")["paths"]["apis/apps/v1"]["serverRelativeURL"]
                .as_str()
                .expect("url")
                .starts_with("/openapi/v3/apis/apps/v1?hash=")
        );
    }
}
