//! docs/openapi.json and the router cannot drift apart: every route the
//! router declares (read from `src/http/*.rs`) is documented with the same
//! methods, every documented operation is served by the real binary (not
//! the router's fallback, not a 405), and what it answers without
//! credentials is one of its documented statuses.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;

const METHODS: &[&str] = &["get", "post", "put", "delete", "patch"];

/// `(METHOD, path)` of every `.route("path", get(..).post(..))` in the
/// HTTP sources.
fn router_routes() -> BTreeSet<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut routes = BTreeSet::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("src/http")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    for file in files {
        let src = std::fs::read_to_string(&file).expect("source");
        let mut rest = src.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            // The path literal, then the method router up to the closing
            // parenthesis of `.route(`.
            let open = rest.find('"').expect("route path literal");
            let close = open + 1 + rest[open + 1..].find('"').expect("end of path");
            let path = rest[open + 1..close].to_string();
            let mut depth = 1;
            let mut end = close + 1;
            for (i, c) in rest[close + 1..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = close + 1 + i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let methods = &rest[close + 1..end];
            let mut found = false;
            for m in METHODS {
                let needle = format!("{m}(");
                let mut from = 0;
                while let Some(i) = methods[from..].find(&needle) {
                    let i = from + i;
                    let before = methods[..i].chars().last();
                    if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        routes.insert((m.to_uppercase(), path.clone()));
                        found = true;
                    }
                    from = i + needle.len();
                }
            }
            assert!(found, "{}: no method for {path}", file.display());
            rest = &rest[end..];
        }
    }
    routes
}

fn spec() -> Value {
    serde_json::from_str(include_str!("../docs/openapi.json")).expect("openapi.json is JSON")
}

fn documented(spec: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(*m).is_some() {
                ops.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let routes = router_routes();
    assert!(routes.len() > 20, "the scan found the routes: {routes:?}");
    let ops = documented(&spec());
    let missing: Vec<_> = routes.difference(&ops).collect();
    let extra: Vec<_> = ops.difference(&routes).collect();
    assert!(
        missing.is_empty(),
        "served but not in docs/openapi.json: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "in docs/openapi.json but not served: {extra:?}"
    );
}

#[test]
fn every_operation_documents_its_errors_and_parameters() {
    let spec = spec();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for m in METHODS {
            let Some(op) = item.get(*m) else { continue };
            let responses = op["responses"].as_object().expect("responses");
            let has_body = op.get("requestBody").is_some();
            let params: Vec<&str> = op["parameters"]
                .as_array()
                .map(|ps| ps.iter().filter_map(|p| p["name"].as_str()).collect())
                .unwrap_or_default();
            // Each {param} of the path is declared.
            for seg in path.split('/') {
                if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    assert!(params.contains(&name), "{m} {path}: {name} not declared");
                }
            }
            if path.contains("{id}") {
                assert!(
                    responses.contains_key("400"),
                    "{m} {path}: 400 for a bad id"
                );
            }
            if has_body {
                for code in ["400", "413"] {
                    assert!(responses.contains_key(code), "{m} {path}: {code}");
                }
            }
            let secured = op["security"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|r| r.as_object().is_some_and(|o| !o.is_empty()))
            });
            if secured {
                assert!(responses.contains_key("401"), "{m} {path}: 401");
            }
            // Error answers are JSON {"error"}.
            for (code, r) in responses {
                if code.starts_with('4') || code.starts_with('5') {
                    let content = r["content"].as_object();
                    let json = content.and_then(|c| c.get("application/json"));
                    let html = content.is_some_and(|c| c.contains_key("text/html; charset=utf-8"));
                    assert!(json.is_some() || html, "{m} {path} {code}: not JSON: {r}");
                }
            }
        }
    }
    let transfer = &spec["paths"]["/api/conversations/{id}/transfer"]["post"]["requestBody"]
        ["content"]["application/json"]["schema"];
    assert_eq!(transfer["oneOf"].as_array().map(Vec::len), Some(2));
    let id = &spec["paths"]["/api/conversations/{id}"]["get"]["parameters"][0]["schema"];
    assert_eq!(
        (id["type"].as_str(), id["minimum"].as_u64()),
        (Some("integer"), Some(1))
    );
}

#[tokio::test]
async fn every_documented_operation_is_served_and_answers_a_documented_status() {
    let server = Server::start(&demo_config());
    let spec = spec();
    let fill = |path: &str| {
        path.replace("{tenant}", "demo")
            .replace("{id}", "1")
            .replace("{queue}", "no-such-queue")
            .replace("{channel}", "no-such-channel")
            .replace("{name}", "app.css")
    };
    for (method, path) in documented(&spec) {
        // No credentials: nothing changes, every route still answers.
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let resp = server
            .http
            .request(m, server.url(&fill(&path)))
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        assert_ne!(status, 405, "{method} {path}: not routed ({body})");
        assert!(
            !body.contains("no route for"),
            "{method} {path}: the router's fallback answered"
        );
        let responses = &spec["paths"][&path][method.to_lowercase()]["responses"];
        assert!(
            responses.get(status.to_string()).is_some() || responses.get("default").is_some(),
            "{method} {path}: {status} is not documented ({body})"
        );
    }
}
