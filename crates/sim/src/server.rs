//! The HTTP layer: hyper 1 on a TCP listener, routing, content
//! negotiation, faults, metrics, and the streaming watch responses.

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};

use crate::convert::view;
use crate::discovery;
use crate::error::ApiError;
use crate::faults::{FaultState, Faults, Injected};
use crate::metrics::RequestCounters;
use crate::openapi;
use crate::resources::{Registry, ResourceDef};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{
    DeleteOpts, EventType, FieldValidation, PatchType, Store, WatchEvent, WatchFrom, WriteOpts,
    WriteResult,
};
use crate::table;

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Everything a request handler needs.
pub(crate) struct Shared {
    pub store: Store,
    pub faults: Arc<FaultState>,
    pub metrics: RequestCounters,
    pub bookmark_interval: Duration,
    pub default_watch_timeout: Duration,
    pub url: String,
    pub shutdown: watch::Receiver<bool>,
}

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let sh = shared.clone();
                let mut stop = shared.shutdown.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let sh = sh.clone();
                        async move { Ok::<_, Infallible>(handle(sh, req).await) }
                    });
                    let conn = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = stop.wait_for(|s| *s) => {}
                    }
                });
            }
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed_unsync()
}

fn respond(code: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert("content-type", v);
    }
    r
}

fn json_response(code: u16, v: &Value) -> Response<Body> {
    respond(code, "application/json", v.to_string())
}

fn error_response(e: &ApiError) -> Response<Body> {
    let mut r = json_response(e.code, &e.status());
    if let Some(s) = e.retry_after
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert("retry-after", v);
    }
    r
}

fn not_found_path() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
    .with_details(json!({}))
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (crate::util::url_decode(k), crate::util::url_decode(v)),
            None => (crate::util::url_decode(p), String::new()),
        })
        .collect()
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn truthy(q: &HashMap<String, String>, k: &str) -> bool {
    matches!(q.get(k).map(String::as_str), Some("true" | "1" | ""))
        && q.contains_key(k)
        && q.get(k).map(String::as_str) != Some("false")
}

async fn read_body(
    req: Request<Incoming>,
) -> Result<(hyper::http::request::Parts, Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading request body: {e}")))?
        .to_bytes();
    Ok((parts, bytes))
}

async fn handle(sh: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = parse_query(req.uri().query());
    match path.as_str() {
        "/healthz" | "/readyz" | "/livez" => return respond(200, "text/plain", "ok"),
        "/metrics" => {
            let counts = sh.store.lock().counts();
            return respond(200, "text/plain; version=0.0.4", sh.metrics.render(&counts));
        }
        "/sim/faults" => return faults_endpoint(&sh, req).await,
        "/sim/drop-watches" if req.method() == Method::POST => {
            sh.faults.cut_all();
            return json_response(200, &json!({"dropped": true}));
        }
        _ => {}
    }
    if path.starts_with("/healthz/") || path.starts_with("/readyz/") || path.starts_with("/livez/")
    {
        return respond(200, "text/plain", "ok");
    }
    sh.faults.wait_unpaused().await;
    let accept = header(req.headers(), "accept").to_string();
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    if req.method() == Method::GET
        && let Some(r) = non_resource(&sh, &segs, &query, &accept)
    {
        return r;
    }
    let parsed = {
        let st = sh.store.lock();
        parse_resource_path(&segs, &st.registry)
    };
    match parsed {
        Some(rp) => resource_request(sh, rp, req, query).await,
        None => error_response(&not_found_path()),
    }
}

async fn faults_endpoint(sh: &Shared, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    if method == Method::GET {
        return json_response(
            200,
            &serde_json::to_value(sh.faults.get()).unwrap_or(Value::Null),
        );
    }
    if method != Method::PUT && method != Method::POST && method != Method::PATCH {
        return error_response(&ApiError::method_not_allowed("use GET or PUT"));
    }
    let body = match read_body(req).await {
        Ok((_, b)) => b,
        Err(e) => return error_response(&e),
    };
    let patch: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error_response(&ApiError::bad_request(format!("faults: {e}"))),
    };
    // PUT replaces; PATCH/POST overlay the given fields on the current faults.
    let mut cur = if method == Method::PUT {
        json!({})
    } else {
        serde_json::to_value(sh.faults.get()).unwrap_or_else(|_| json!({}))
    };
    if let (Some(c), Some(p)) = (cur.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            c.insert(k.clone(), v.clone());
        }
    }
    match serde_json::from_value::<Faults>(cur) {
        Ok(f) => {
            sh.faults.set(f);
            json_response(
                200,
                &serde_json::to_value(sh.faults.get()).unwrap_or(Value::Null),
            )
        }
        Err(e) => error_response(&ApiError::bad_request(format!("faults: {e}"))),
    }
}

fn non_resource(
    sh: &Shared,
    segs: &[&str],
    query: &HashMap<String, String>,
    accept: &str,
) -> Option<Response<Body>> {
    let st = sh.store.lock();
    let reg = &st.registry;
    let agg = discovery::aggregated_version(accept);
    let agg_response = |v: &Value, version: &str| {
        respond(
            200,
            &format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"),
            v.to_string(),
        )
    };
    match segs {
        ["version"] => Some(json_response(200, &discovery::version_info())),
        ["api"] => Some(match agg {
            Some(v) => agg_response(&discovery::aggregated(reg, true, v), v),
            None => json_response(200, &discovery::api_versions(&sh.url)),
        }),
        ["apis"] => Some(match agg {
            Some(v) => agg_response(&discovery::aggregated(reg, false, v), v),
            None => json_response(200, &discovery::api_group_list(reg)),
        }),
        ["api", v] => Some(match discovery::api_resource_list(reg, "", v) {
            Some(l) => json_response(200, &l),
            None => error_response(&not_found_path()),
        }),
        ["apis", g] => Some(match discovery::api_group(reg, g) {
            Some(l) => json_response(200, &l),
            None => error_response(&not_found_path()),
        }),
        ["apis", g, v] => Some(match discovery::api_resource_list(reg, g, v) {
            Some(l) => json_response(200, &l),
            None => error_response(&not_found_path()),
        }),
        ["openapi", "v3"] => Some(json_response(200, &openapi::index(reg, &st.openapi_tag()))),
        ["openapi", "v3", rest @ ..] => {
            let (group, version) = match rest {
                ["api", v] => ("", *v),
                ["apis", g, v] => (*g, *v),
                _ => ("", ""),
            };
            let doc = if version.is_empty() {
                None
            } else {
                openapi::gv_document(reg, group, version)
            };
            Some(match doc {
                Some(d) => {
                    let want = openapi::doc_hash(&st.openapi_tag(), group, version);
                    let fresh = query.get("hash").is_some_and(|h| *h == want);
                    let mut r = json_response(200, &d);
                    let cc = if fresh {
                        "public, immutable, max-age=31536000"
                    } else {
                        "no-cache, private"
                    };
                    r.headers_mut()
                        .insert("cache-control", HeaderValue::from_static(cc));
                    r
                }
                None => error_response(&not_found_path()),
            })
        }
        ["openapi", "v2"] => Some(if accept.contains("protobuf") {
            respond(200, "application/octet-stream", openapi::v2_protobuf())
        } else {
            json_response(200, &openapi::v2_json())
        }),
        _ => None,
    }
}

#[derive(Debug, Clone)]
struct ResPath {
    group: String,
    version: String,
    ns: Option<String>,
    plural: String,
    name: Option<String>,
    sub: Option<String>,
    watch_prefix: bool,
}

fn parse_resource_path(segs: &[&str], reg: &Registry) -> Option<ResPath> {
    let (group, version, mut rest) = match segs {
        ["api", v, rest @ ..] if !rest.is_empty() => ("", *v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => return None,
    };
    let mut watch_prefix = false;
    if rest.first() == Some(&"watch") {
        watch_prefix = true;
        rest = &rest[1..];
    }
    let namespaced_plural = |p: &str| reg.find(group, version, p).is_some_and(|d| d.namespaced);
    let (ns, rest) = if rest.len() >= 3 && rest[0] == "namespaces" && namespaced_plural(rest[2]) {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    if rest.is_empty() || rest.len() > 3 {
        return None;
    }
    Some(ResPath {
        group: group.into(),
        version: version.into(),
        ns,
        plural: rest[0].into(),
        name: rest.get(1).map(|s| s.to_string()),
        sub: rest.get(2).map(|s| s.to_string()),
        watch_prefix,
    })
}

fn verb_of(
    method: &Method,
    rp: &ResPath,
    q: &HashMap<String, String>,
    content_type: &str,
) -> &'static str {
    match *method {
        Method::GET if rp.name.is_some() => "get",
        Method::GET if rp.watch_prefix || truthy(q, "watch") => "watch",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH if content_type.starts_with("application/apply-patch") => "apply",
        Method::PATCH => "patch",
        Method::DELETE if rp.name.is_some() => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
}

async fn resource_request(
    sh: Arc<Shared>,
    rp: ResPath,
    req: Request<Incoming>,
    query: HashMap<String, String>,
) -> Response<Body> {
    let content_type = header(req.headers(), "content-type").to_string();
    let verb = verb_of(req.method(), &rp, &query, &content_type);
    let sub = rp.sub.clone().unwrap_or_default();
    let resp = match resource_inner(&sh, &rp, verb, req, &query).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    sh.metrics
        .record(verb, &rp.plural, &sub, resp.status().as_u16());
    resp
}

fn write_opts(
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    verb: &'static str,
) -> Result<WriteOpts, ApiError> {
    let field_validation = match q.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}"
            )));
        }
    };
    let manager = match q.get("fieldManager").filter(|m| !m.is_empty()) {
        Some(m) => m.clone(),
        None if verb == "apply" => {
            return Err(ApiError::bad_request(
                "PATCH, application/apply-patch+yaml requires fieldManager to be set",
            ));
        }
        None => {
            let ua = header(headers, "user-agent");
            let prefix = ua.split('/').next().unwrap_or("").trim();
            if prefix.is_empty() {
                "unknown".to_string()
            } else {
                prefix.to_string()
            }
        }
    };
    Ok(WriteOpts {
        dry_run: q.get("dryRun").is_some_and(|v| v == "All"),
        manager,
        field_validation,
        verb,
        keep_status: false,
    })
}

fn parse_body(content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    match ct {
        "" | "application/json" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        }),
        "application/yaml" | "application/x-yaml" | "text/yaml" => parse_yaml_or_json(body),
        other => Err(ApiError::unsupported_media_type(
            other,
            &["application/json", "application/yaml"],
        )),
    }
}

fn parse_yaml_or_json(body: &[u8]) -> Result<Value, ApiError> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let s = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))?;
    serde_saphyr::from_str::<Value>(s)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

fn acceptable(accept: &str) -> bool {
    accept.is_empty()
        || accept.split(',').any(|m| {
            let m = m.split(';').next().unwrap_or("").trim();
            m.contains("json") || m == "*/*" || m == "application/*" || m.contains("yaml")
        })
}

/// `Table` requested, with its `includeObject` choice.
fn table_request(accept: &str, q: &HashMap<String, String>) -> Option<String> {
    let wants = accept.split(',').any(|m| {
        let p: Vec<&str> = m.split(';').map(str::trim).collect();
        p.contains(&"as=Table") && p.contains(&"g=meta.k8s.io")
    });
    wants.then(|| {
        q.get("includeObject")
            .cloned()
            .unwrap_or_else(|| "Metadata".into())
    })
}

fn write_response(def: &ResourceDef, r: WriteResult) -> Response<Body> {
    let code = if r.created { 201 } else { 200 };
    let mut resp = json_response(code, &view(def, &r.object));
    for w in r.warnings {
        let v = format!("299 - \"{}\"", w.replace('"', "\\\""));
        if let Ok(h) = HeaderValue::from_str(&v) {
            resp.headers_mut().append("warning", h);
        }
    }
    resp
}

async fn resource_inner(
    sh: &Arc<Shared>,
    rp: &ResPath,
    verb: &'static str,
    req: Request<Incoming>,
    q: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let def = {
        let st = sh.store.lock();
        st.registry.find(&rp.group, &rp.version, &rp.plural)
    }
    .ok_or_else(not_found_path)?;
    if let Some(s) = &rp.sub
        && (s != "status" || !def.status)
    {
        return Err(not_found_path());
    }
    if def.namespaced
        && rp.ns.is_none()
        && !matches!(verb, "list" | "watch")
        && (rp.name.is_some() || verb == "create" || verb == "deletecollection")
    {
        // Namespaced objects are addressed under /namespaces/<ns>/.
        if rp.name.is_some() {
            return Err(not_found_path());
        }
    }
    let accept = header(req.headers(), "accept").to_string();
    if !acceptable(&accept) {
        return Err(ApiError::new(
            406,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: application/json, application/yaml (asked for {accept})"
            ),
        ));
    }
    if let Some(d) = sh.faults.latency(verb, &rp.plural) {
        tokio::time::sleep(d).await;
    }
    let is_write = matches!(
        verb,
        "create" | "update" | "patch" | "apply" | "delete" | "deletecollection"
    );
    match sh.faults.decide(verb, &rp.plural, is_write) {
        Injected::None => {}
        Injected::Error => {
            return Err(ApiError::internal("injected fault: internal error"));
        }
        Injected::Throttle(secs) => {
            let mut e = ApiError::new(
                429,
                "TooManyRequests",
                "injected fault: too many requests, please try again later",
            );
            e.retry_after = Some(secs);
            return Err(e);
        }
        Injected::Conflict => {
            return Err(ApiError::conflict(
                &def.qualified(),
                rp.name.as_deref().unwrap_or(""),
            ));
        }
    }
    let ns = rp.ns.as_deref();
    let table = table_request(&accept, q);
    match verb {
        "get" => {
            let name = rp.name.as_deref().unwrap_or("");
            let obj = {
                let st = sh.store.lock();
                let nsx = if def.namespaced {
                    ns.unwrap_or("default")
                } else {
                    ""
                };
                st.get(&def, nsx, name)
            }
            .ok_or_else(|| ApiError::not_found(&def.qualified(), name))?;
            let v = view(&def, &obj);
            Ok(match table {
                Some(inc) => {
                    let rv = crate::util::meta_str(&v, "resourceVersion")
                        .unwrap_or("")
                        .to_string();
                    json_response(
                        200,
                        &table::table(&def, vec![table::row(&def, &v, &inc)], &rv, None),
                    )
                }
                None => json_response(200, &v),
            })
        }
        "list" => list(sh, &def, ns, q, table),
        "watch" => start_watch(sh, def, ns, q, table),
        "create" | "update" | "patch" | "apply" => {
            let headers = req.headers().clone();
            let content_type = header(&headers, "content-type").to_string();
            if content_type.contains("protobuf") {
                return Err(ApiError::unsupported_media_type(
                    &content_type,
                    &["application/json", "application/yaml"],
                ));
            }
            let opts = write_opts(q, &headers, verb)?;
            let (_, body) = read_body(req).await?;
            let name = rp.name.as_deref().unwrap_or("");
            let sub = rp.sub.as_deref();
            let result = match verb {
                "create" => {
                    if rp.name.is_some() {
                        return Err(ApiError::method_not_allowed(
                            "POST is not allowed on a named resource",
                        ));
                    }
                    let obj = parse_body(&content_type, &body)?;
                    sh.store.lock().create(&def, ns, obj, &opts)?
                }
                "update" => {
                    let obj = parse_body(&content_type, &body)?;
                    sh.store.lock().update(&def, ns, name, obj, sub, &opts)?
                }
                _ => {
                    let ct = content_type.split(';').next().unwrap_or("").trim();
                    let ptype = match ct {
                        "application/merge-patch+json" => PatchType::Merge,
                        "application/json-patch+json" => PatchType::Json,
                        "application/strategic-merge-patch+json" => PatchType::Strategic,
                        "application/apply-patch+yaml" | "application/apply-patch+json" => {
                            PatchType::Apply
                        }
                        other => {
                            let mut accepted = vec![
                                "application/json-patch+json",
                                "application/merge-patch+json",
                                "application/apply-patch+yaml",
                            ];
                            if !def.is_custom() {
                                accepted.push("application/strategic-merge-patch+json");
                            }
                            return Err(ApiError::unsupported_media_type(other, &accepted));
                        }
                    };
                    let patch = if ptype == PatchType::Apply {
                        parse_yaml_or_json(&body)?
                    } else {
                        serde_json::from_slice(&body).map_err(|e| {
                            ApiError::bad_request(format!("error decoding patch: {e}"))
                        })?
                    };
                    let force = q.get("force").is_some_and(|f| f == "true");
                    sh.store
                        .lock()
                        .patch(&def, ns, name, ptype, &patch, sub, force, &opts)?
                }
            };
            Ok(write_response(&def, result))
        }
        "delete" | "deletecollection" => {
            let (_, body) = read_body(req).await?;
            let mut d = DeleteOpts {
                dry_run: q.get("dryRun").is_some_and(|v| v == "All"),
                orphan: q.get("propagationPolicy").is_some_and(|p| p == "Orphan"),
                ..DeleteOpts::default()
            };
            if !body.is_empty()
                && let Ok(opts) = serde_json::from_slice::<Value>(&body)
            {
                if opts.get("propagationPolicy").and_then(Value::as_str) == Some("Orphan")
                    || opts.get("orphanDependents").and_then(Value::as_bool) == Some(true)
                {
                    d.orphan = true;
                }
                if opts
                    .get("dryRun")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|x| x == "All"))
                {
                    d.dry_run = true;
                }
                d.uid = opts
                    .pointer("/preconditions/uid")
                    .and_then(Value::as_str)
                    .map(String::from);
                d.resource_version = opts
                    .pointer("/preconditions/resourceVersion")
                    .and_then(Value::as_str)
                    .map(String::from);
            }
            if verb == "delete" {
                let name = rp.name.as_deref().unwrap_or("");
                let obj = sh.store.lock().delete(&def, ns, name, &d, "delete")?;
                Ok(json_response(200, &obj))
            } else {
                let labels =
                    LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))
                        .map_err(ApiError::bad_request)?;
                let fields =
                    FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))
                        .map_err(ApiError::bad_request)?;
                let items = sh
                    .store
                    .lock()
                    .delete_collection(&def, ns, &labels, &fields, &d)?;
                Ok(json_response(
                    200,
                    &json!({"kind": def.list_kind, "apiVersion": def.api_version(), "metadata": {}, "items": items}),
                ))
            }
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource".to_string(),
        )),
    }
}

fn selectors(q: &HashMap<String, String>) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

fn list(
    sh: &Arc<Shared>,
    def: &ResourceDef,
    ns: Option<&str>,
    q: &HashMap<String, String>,
    table: Option<String>,
) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(q)?;
    let limit = q.get("limit").and_then(|l| l.parse::<usize>().ok());
    let cont = q
        .get("continue")
        .map(String::as_str)
        .filter(|c| !c.is_empty());
    if cont.is_some() && sh.faults.take_expiry() {
        return Err(ApiError::gone(
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
        ));
    }
    let exact = match (
        q.get("resourceVersion"),
        q.get("resourceVersionMatch").map(String::as_str),
    ) {
        (Some(rv), Some("Exact")) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
        _ => None,
    };
    let result = sh
        .store
        .lock()
        .list(def, ns, &labels, &fields, limit, cont, exact)?;
    let rv = result.rv.to_string();
    if let Some(inc) = table {
        let rows: Vec<Value> = result
            .items
            .iter()
            .map(|o| table::row(def, &view(def, o), &inc))
            .collect();
        return Ok(json_response(
            200,
            &table::table(def, rows, &rv, result.continue_token.as_deref()),
        ));
    }
    let mut meta = json!({"resourceVersion": rv});
    if let Some(c) = &result.continue_token {
        meta["continue"] = json!(c);
        meta["remainingItemCount"] = json!(result.remaining.unwrap_or(0));
    }
    let mut out = Vec::with_capacity(256 + result.items.len() * 1024);
    out.extend_from_slice(b"{\"kind\":");
    out.extend_from_slice(Value::String(def.list_kind.clone()).to_string().as_bytes());
    out.extend_from_slice(b",\"apiVersion\":");
    out.extend_from_slice(Value::String(def.api_version()).to_string().as_bytes());
    out.extend_from_slice(b",\"metadata\":");
    out.extend_from_slice(meta.to_string().as_bytes());
    out.extend_from_slice(b",\"items\":[");
    for (i, o) in result.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let v = view(def, o);
        serde_json::to_writer(&mut out, v.as_ref())
            .map_err(|e| ApiError::internal(format!("encoding list: {e}")))?;
    }
    out.extend_from_slice(b"]}");
    Ok(respond(200, "application/json", out))
}

/// How one watcher renders and filters events.
struct WatchSpec {
    def: Arc<ResourceDef>,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    table: Option<String>,
}

impl WatchSpec {
    fn matches(&self, obj: &Value) -> bool {
        if let (Some(ns), true) = (&self.ns, self.def.namespaced)
            && crate::util::meta_str(obj, "namespace") != Some(ns.as_str())
        {
            return false;
        }
        if !self.labels.is_empty() && !self.labels.matches(obj) {
            return false;
        }
        if !self.fields.is_empty() && !self.fields.matches(&view(&self.def, obj)) {
            return false;
        }
        true
    }

    fn line(&self, kind: &str, obj: &Value) -> Vec<u8> {
        let v = view(&self.def, obj);
        let payload: Cow<'_, Value> = match &self.table {
            Some(inc) => {
                let rv = crate::util::meta_str(&v, "resourceVersion")
                    .unwrap_or("")
                    .to_string();
                Cow::Owned(table::table(
                    &self.def,
                    vec![table::row(&self.def, &v, inc)],
                    &rv,
                    None,
                ))
            }
            None => v,
        };
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        if serde_json::to_writer(&mut out, payload.as_ref()).is_err() {
            out.extend_from_slice(b"null");
        }
        out.extend_from_slice(b"}\n");
        out
    }

    /// The event this watcher should see for a committed change, if any:
    /// a modification that moves an object into or out of the selection
    /// becomes ADDED or DELETED.
    fn render(&self, ev: &WatchEvent) -> Option<Vec<u8>> {
        let now = self.matches(&ev.object);
        let kind = match ev.kind {
            EventType::Added | EventType::Deleted => now.then_some(ev.kind),
            EventType::Modified => {
                let before = ev.prev.as_ref().is_none_or(|p| self.matches(p));
                match (before, now) {
                    (true, true) => Some(EventType::Modified),
                    (false, true) => Some(EventType::Added),
                    (true, false) => Some(EventType::Deleted),
                    (false, false) => None,
                }
            }
        }?;
        Some(self.line(kind.as_str(), &ev.object))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Vec<u8> {
        let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj =
            json!({"kind": self.def.kind, "apiVersion": self.def.api_version(), "metadata": meta});
        let mut out = json!({"type": "BOOKMARK", "object": obj})
            .to_string()
            .into_bytes();
        out.push(b'\n');
        out
    }
}

/// Resolves when the server shuts down (no borrow of the flag escapes).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await.is_ok();
}

fn streaming_response(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r.headers_mut().insert(
        "cache-control",
        HeaderValue::from_static("no-cache, private"),
    );
    r
}

fn start_watch(
    sh: &Arc<Shared>,
    def: Arc<ResourceDef>,
    ns: Option<&str>,
    q: &HashMap<String, String>,
    table: Option<String>,
) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(q)?;
    let bookmarks = truthy(q, "allowWatchBookmarks");
    let initial_events = truthy(q, "sendInitialEvents");
    let rv = q.get("resourceVersion").map(String::as_str).unwrap_or("");
    let from = if initial_events || rv.is_empty() || rv == "0" {
        WatchFrom::Current
    } else {
        WatchFrom::Since(
            rv.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?,
        )
    };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(sh.default_watch_timeout);
    let spec = WatchSpec {
        def: def.clone(),
        ns: ns.map(String::from),
        labels,
        fields,
        table,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let forced_expiry = matches!(from, WatchFrom::Since(_)) && sh.faults.take_expiry();
    let start = if forced_expiry {
        Err(ApiError::gone(format!("too old resource version: {rv}")))
    } else {
        sh.store.lock().watch_start(&def, from)
    };
    let start = match start {
        Ok(s) => s,
        Err(e) => {
            // As the real server: 200, then one ERROR event carrying the Status.
            let mut line = json!({"type": "ERROR", "object": e.status()})
                .to_string()
                .into_bytes();
            line.push(b'\n');
            let _ = tx.try_send(Bytes::from(line));
            drop(tx);
            return Ok(streaming_response(rx));
        }
    };
    let sh2 = sh.clone();
    tokio::spawn(async move {
        let _guard = sh2.metrics.watch_started(&spec.def.plural);
        run_watch(sh2, spec, start, bookmarks, initial_events, timeout, tx).await;
    });
    Ok(streaming_response(rx))
}

async fn run_watch(
    sh: Arc<Shared>,
    spec: WatchSpec,
    start: crate::store::WatchStart,
    bookmarks: bool,
    initial_events: bool,
    timeout: Duration,
    tx: mpsc::Sender<Bytes>,
) {
    let (max_events, max_secs) = sh.faults.watch_limits();
    let mut limit = timeout;
    if let Some(s) = max_secs {
        limit = limit.min(Duration::from_secs_f64(s.max(0.0)));
    }
    let deadline = tokio::time::Instant::now() + limit;
    let mut sent: u64 = 0;
    let mut shutdown = sh.shutdown.clone();
    let mut cut = sh.faults.cut_signal();
    let mut rx = start.rx;
    macro_rules! send {
        ($bytes:expr, $counted:expr) => {{
            if tx.send(Bytes::from($bytes)).await.is_err() {
                return;
            }
            sh.metrics.event_sent();
            if $counted {
                sent += 1;
                if max_events.is_some_and(|m| sent >= m) {
                    return;
                }
            }
        }};
    }
    for ev in &start.initial {
        if let Some(line) = spec.render(ev) {
            send!(line, true);
        }
    }
    if initial_events && bookmarks {
        send!(spec.bookmark(start.rv, true), false);
    }
    let mut ticker = tokio::time::interval(sh.bookmark_interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(ev) => {
                    if let Some(line) = spec.render(&ev) {
                        send!(line, true);
                    }
                }
                // A watcher too slow to keep up is cut; it re-watches from
                // its last resourceVersion, replayed from history.
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = ticker.tick(), if bookmarks => {
                let rv = {
                    let st = sh.store.lock();
                    rx.is_empty().then_some(st.rv)
                };
                if let Some(rv) = rv {
                    send!(spec.bookmark(rv, false), false);
                }
            }
            _ = tokio::time::sleep_until(deadline) => return,
            _ = tx.closed() => return,
            _ = stopped(&mut shutdown) => return,
            _ = cut.changed() => return,
        }
    }
}
