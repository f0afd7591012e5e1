//! A stand-in for Meta's Graph API on loopback (the only thing the tests
//! replace): the Send API, the User Profile API and a CDN for attachment
//! content. Every call must carry the demo tenant's `access_token` and
//! `appsecret_proof`; a call without them is refused as Meta does and
//! recorded in `bad_proofs`.
#![allow(dead_code)] // each test file uses a different part of the stand-in

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Json;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

pub const ACCESS_TOKEN: &str = "demo-access";
pub const APP_SECRET: &str = "demo-secret";

/// `appsecret_proof` as Meta computes it.
pub fn proof(secret: &str, token: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(token.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub query: BTreeMap<String, String>,
    /// The JSON body; for a `multipart/form-data` call, its text fields
    /// (each parsed as JSON when it is, as Meta does).
    pub body: Value,
    /// The files of a `multipart/form-data` call.
    pub files: Vec<Part>,
}

/// One file part of a `multipart/form-data` body.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A `multipart/form-data` body (RFC 7578) as its text fields and files;
/// `None` for a body that does not follow the format.
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Option<(Value, Vec<Part>)> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))?
        .trim_matches('"');
    let delimiter = format!("--{boundary}").into_bytes();
    let mut fields = serde_json::Map::new();
    let mut files = Vec::new();
    let mut rest = &body[find(body, &delimiter)? + delimiter.len()..];
    loop {
        if rest.starts_with(b"--") {
            return Some((Value::Object(fields), files));
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&rest[..head_end]).ok()?;
        let content = &rest[head_end + 4..];
        let mut end_marker = b"\r\n".to_vec();
        end_marker.extend_from_slice(&delimiter);
        let end = find(content, &end_marker)?;
        let data = &content[..end];
        rest = &content[end + end_marker.len()..];
        let (mut name, mut filename, mut ctype) = (None, None, None);
        for line in head.split("\r\n") {
            let (k, v) = line.split_once(':')?;
            if k.eq_ignore_ascii_case("content-disposition") {
                for p in v.split(';').map(str::trim) {
                    if let Some(n) = p.strip_prefix("name=") {
                        name = Some(n.trim_matches('"').to_string());
                    } else if let Some(f) = p.strip_prefix("filename=") {
                        filename = Some(f.trim_matches('"').to_string());
                    }
                }
            } else if k.eq_ignore_ascii_case("content-type") {
                ctype = Some(v.trim().to_string());
            }
        }
        let name = name?;
        if filename.is_some() {
            files.push(Part {
                name,
                filename,
                content_type: ctype,
                data: data.to_vec(),
            });
        } else {
            let text = String::from_utf8(data.to_vec()).ok()?;
            let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            fields.insert(name, value);
        }
    }
}

#[derive(Clone, Default)]
pub struct Graph {
    pub sent: Arc<Mutex<Vec<Call>>>,
    pub profile_calls: Arc<Mutex<Vec<Call>>>,
    /// Calls refused for a missing or wrong token or proof.
    pub bad_proofs: Arc<Mutex<Vec<String>>>,
    /// PSID → (first_name, last_name).
    pub profiles: Arc<Mutex<HashMap<String, (String, String)>>>,
    /// PSIDs whose profile request is never answered.
    pub hang: Arc<Mutex<Vec<String>>>,
    /// How many of the next sends are refused as Meta refuses a message
    /// outside the messaging window (400, OAuthException code 10).
    pub refuse_sends: Arc<Mutex<usize>>,
    /// While set, a send is received but never answered (counted in
    /// `held`, never in `sent`): a reply the channel has not accepted.
    pub hold_sends: Arc<std::sync::atomic::AtomicBool>,
    /// Sends received while `hold_sends` was set.
    pub held: Arc<std::sync::atomic::AtomicUsize>,
    /// Sender actions (`{"recipient", "sender_action"}` on the Send API)
    /// accepted, kept apart from the messages in `sent`.
    pub actions: Arc<Mutex<Vec<Call>>>,
    /// How many of the next sender actions are refused (400).
    pub refuse_actions: Arc<Mutex<usize>>,
}

fn authorized(g: &Graph, path: &str, q: &BTreeMap<String, String>) -> bool {
    let ok = q.get("access_token").map(String::as_str) == Some(ACCESS_TOKEN)
        && q.get("appsecret_proof") == Some(&proof(APP_SECRET, ACCESS_TOKEN));
    if !ok {
        g.bad_proofs.lock().expect("lock").push(path.to_string());
    }
    ok
}

fn oauth_error(message: &str) -> (StatusCode, Json<Value>) {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": {"message": message, "type": "OAuthException", "code": 100}})),
    )
}

async fn send(
    State(g): State<Graph>,
    uri: axum::http::Uri,
    Query(query): Query<BTreeMap<String, String>>,
    headers: axum::http::HeaderMap,
    raw: axum::body::Bytes,
) -> (StatusCode, Json<Value>) {
    // JSON, or a file sent with the message as `multipart/form-data`
    // (`recipient`, `message`, `filedata`).
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (body, files) = if ctype.starts_with("multipart/form-data") {
        match parse_multipart(&ctype, &raw) {
            Some((fields, files))
                if files.len() == 1 && files[0].name == "filedata" && !files[0].data.is_empty() =>
            {
                (fields, files)
            }
            _ => return oauth_error("(#100) Upload attachment failure."),
        }
    } else {
        match serde_json::from_slice::<Value>(&raw) {
            Ok(v) => (v, Vec::new()),
            Err(_) => return oauth_error("(#100) Invalid JSON"),
        }
    };
    if !authorized(&g, uri.path(), &query) {
        return oauth_error("Invalid appsecret_proof provided in the API argument");
    }
    if body.get("sender_action").is_some() {
        let mut refuse = g.refuse_actions.lock().expect("lock");
        if *refuse > 0 {
            *refuse -= 1;
            return oauth_error("(#100) The sender action could not be sent");
        }
        drop(refuse);
        g.actions.lock().expect("lock").push(Call {
            path: uri.path().to_string(),
            query,
            body: body.clone(),
            files,
        });
        return (
            StatusCode::OK,
            Json(json!({"recipient_id": body["recipient"]["id"]})),
        );
    }
    if g.hold_sends.load(std::sync::atomic::Ordering::SeqCst) {
        g.held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Never answered: the sender dies (or gives up) first.
        std::future::pending::<()>().await;
    }
    {
        let mut refuse = g.refuse_sends.lock().expect("lock");
        if *refuse > 0 {
            *refuse -= 1;
            return (
                StatusCode::BAD_REQUEST,
                Json(
                    json!({"error": {"message": "(#10) This message is sent outside of allowed window.",
                                      "type": "OAuthException", "code": 10}}),
                ),
            );
        }
    }
    g.sent.lock().expect("lock").push(Call {
        path: uri.path().to_string(),
        query,
        body: body.clone(),
        files,
    });
    (
        StatusCode::OK,
        Json(json!({"recipient_id": body["recipient"]["id"], "message_id": "m_stand_in"})),
    )
}

async fn profile(
    State(g): State<Graph>,
    Path((_version, psid)): Path<(String, String)>,
    uri: axum::http::Uri,
    Query(query): Query<BTreeMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    g.profile_calls.lock().expect("lock").push(Call {
        path: uri.path().to_string(),
        query: query.clone(),
        body: Value::Null,
        files: Vec::new(),
    });
    if !authorized(&g, uri.path(), &query) {
        return oauth_error("Invalid appsecret_proof provided in the API argument");
    }
    if g.hang.lock().expect("lock").contains(&psid) {
        // Never answers: the server's own deadline must end the wait.
        std::future::pending::<()>().await;
    }
    let known = g.profiles.lock().expect("lock").get(&psid).cloned();
    match known {
        Some((first, last)) => (
            StatusCode::OK,
            Json(json!({"first_name": first, "last_name": last,
                        "profile_pic": "https://cdn.example.invalid/p.jpg", "id": psid})),
        ),
        None => oauth_error("(#100) No profile available for that user"),
    }
}

/// A small PNG (1×1, transparent) the CDN serves.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0a, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

/// Meta's CDN: `photo.png`, `sticker.png`, `doc.pdf`, and `page.html`
/// (a type Switchboard must refuse); anything else 404.
async fn cdn(Path(file): Path<String>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match file.as_str() {
        "photo.png" | "sticker.png" => ([("content-type", "image/png")], PNG).into_response(),
        "doc.pdf" => (
            [("content-type", "application/pdf")],
            &b"%PDF-1.4 stand-in"[..],
        )
            .into_response(),
        "page.html" => (
            [("content-type", "text/html")],
            &b"<script>alert(1)</script>"[..],
        )
            .into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Start the stand-in; its base URL for `SWITCHBOARD_GRAPH_API_BASE`.
pub async fn start() -> (String, Graph) {
    let g = Graph::default();
    let app = axum::Router::new()
        .route("/{version}/me/messages", post(send))
        .route("/{version}/{psid}", get(profile))
        .route("/cdn/{file}", get(cdn))
        .with_state(g.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), g)
}
