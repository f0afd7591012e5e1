//! Native plugins in the running server, end to end against the real
//! binary: the skills-router plugin routes web chat by CAD and admins see
//! it as trusted code; the SMS adapter takes Twilio webhooks (deduplicated
//! by MessageSid) and sends agents' replies to a stand-in Twilio API as the
//! exact form request; a rebuilt C router is swapped in by a reload with no
//! restart; a library with the wrong ABI is refused by reload (422) and by
//! `scripts check` while the old generation keeps routing.
//!
//! The plugin crates' `cdylib`s are built with the test binary's own cargo,
//! profile and target directory (as core/tests/native_support does); the C
//! plugins are compiled with the system `cc`.

mod common;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

/// `<target>/<profile>` of the running test binary.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in <target>/<profile>/deps")
        .to_path_buf()
}

/// Build the workspace's plugin crates once; the folder of their libraries.
fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let profile_dir = profile_dir();
        let target = profile_dir.parent().expect("target dir");
        let profile = profile_dir
            .file_name()
            .expect("profile")
            .to_string_lossy()
            .into_owned();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "build",
                "-q",
                "-p",
                "skills-router",
                "-p",
                "sms-adapter",
                "-p",
                "test-plugin",
            ])
            .arg("--target-dir")
            .arg(target);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        let status = cmd.status().expect("run cargo build for the plugins");
        assert!(status.success(), "building the plugin crates failed");
        profile_dir
    })
}

fn plugin(lib_name: &str) -> PathBuf {
    plugin_dir().join(format!(
        "{}{lib_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Compile C `source` into the shared library `out` with `-D` definitions.
fn cc(source: &Path, out: &Path, defines: &[&str]) {
    let mut cmd = Command::new("cc");
    cmd.args(["-shared", "-fPIC", "-std=c99", "-Wall", "-Werror", "-O1"])
        .arg("-I")
        .arg(repo().join("plugins/sdk/include"));
    for d in defines {
        cmd.arg(format!("-D{d}"));
    }
    // Build beside and rename over: a deploy replaces the file, it does not
    // rewrite the mapped bytes in place.
    let tmp = out.with_extension("tmp.so");
    cmd.arg("-o").arg(&tmp).arg(source);
    let output = cmd.output().expect("run cc");
    assert!(
        output.status.success(),
        "cc {} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::rename(&tmp, out).expect("move the library in place");
}

/// The demo tenant without its Lua routing script, plus `plugins` (TOML).
fn config_with(plugins: &str) -> String {
    let config = demo_config().replace("routing = \"routing/longest_idle.lua\"\n", "");
    format!("{config}\n{plugins}\n")
}

async fn all_available(server: &Server) -> Vec<AgentClient> {
    let mut agents = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let mut a = AgentClient::login(server, name).await;
        a.available().await;
        agents.push(a);
    }
    agents
}

async fn web_chat(server: &Server, visitor: &str, cad: Value) -> u64 {
    let resp = server
        .http
        .post(server.url("/channels/webchat/demo/messages"))
        .json(&json!({"visitor": visitor, "text": "hello", "name": "Visitor", "cad": cad}))
        .send()
        .await
        .expect("post web chat message");
    assert_eq!(resp.status().as_u16(), 202, "web chat message accepted");
    let v: Value = resp.json().await.expect("json");
    v["conversation"].as_u64().expect("conversation id")
}

#[tokio::test]
async fn the_skills_router_plugin_routes_web_chat_by_cad() {
    let config = config_with(&format!(
        "[[tenants.plugins]]\npath = {:?}\nroles = [\"routing\"]\n",
        plugin("skills_router")
    ));
    let server = Server::start(&config);
    let mut agents = all_available(&server).await;

    // Longest idle would be alice (first available); carol has `vip`.
    let id = web_chat(&server, "v1", json!({"tags": "vip", "language": "en"})).await;
    let offer = agents[2].events.next_of("offer").await;
    assert_eq!(offer["conversation"].as_u64(), Some(id));
    assert_eq!(offer["generation"].as_u64(), Some(1));
    // Bob has `billing`.
    let id = web_chat(&server, "v2", json!({"tags": "billing"})).await;
    let offer = agents[1].events.next_of("offer").await;
    assert_eq!(offer["conversation"].as_u64(), Some(id));

    let (status, v) = server
        .admin(Method::GET, "/admin/tenants/demo/scripts", None)
        .await;
    assert_eq!(status, 200, "{v}");
    let p = &v["plugins"][0];
    assert_eq!(p["name"], "skills-router", "{v}");
    assert_eq!(p["trusted_code"], true);
    assert!(p["note"].as_str().is_some_and(|n| n.contains("trusted")));
    assert_eq!(p["files"][0]["role"], "routing");
    assert!(
        p["files"][0]["calls"].as_u64().is_some_and(|c| c >= 2),
        "{v}"
    );
    let listed = v["scripts"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["trusted_code"] == true))
        .expect("the plugin is listed with the scripts");
    assert_eq!(listed["role"], "routing");
}

#[derive(Debug, Clone)]
struct Sent {
    path: String,
    authorization: String,
    content_type: String,
    body: String,
}

#[derive(Clone, Default)]
struct Twilio {
    received: Arc<Mutex<Vec<Sent>>>,
}

async fn twilio_send(
    State(t): State<Twilio>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> (axum::http::StatusCode, axum::Json<Value>) {
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    t.received.lock().expect("lock").push(Sent {
        path: uri.path().to_string(),
        authorization: header("authorization"),
        content_type: header("content-type"),
        body,
    });
    (
        axum::http::StatusCode::CREATED,
        axum::Json(json!({"sid": "SM-out", "status": "queued"})),
    )
}

async fn stand_in_twilio() -> (String, Twilio) {
    let t = Twilio::default();
    let app = axum::Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Messages.json",
            post(twilio_send),
        )
        .with_state(t.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), t)
}

async fn wait_for_sent(t: &Twilio, n: usize) -> Vec<Sent> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let got = t.received.lock().expect("lock").clone();
        if got.len() >= n {
            return got;
        }
        assert!(tokio::time::Instant::now() < deadline, "Twilio got {got:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn sms_webhook(server: &Server, sid: &str, text: &str) -> (u16, String) {
    let resp = server
        .http
        .post(server.url("/channels/sms/demo/webhook"))
        .form(&[
            ("AccountSid", "AC123"),
            ("MessageSid", sid),
            ("From", "+15551234567"),
            ("To", "+15550000000"),
            ("Body", text),
            ("NumMedia", "0"),
        ])
        .send()
        .await
        .expect("sms webhook");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

#[tokio::test]
async fn sms_through_the_adapter_plugin_reaches_an_agent_and_the_reply_reaches_twilio() {
    let (api_base, twilio) = stand_in_twilio().await;
    let config = config_with(&format!(
        "[[tenants.plugins]]\npath = {:?}\nroles = [\"channel\"]\nchannel = \"sms\"\nsource = \"SMS\"\nsettings = {{ account_sid = \"AC123\", auth_token = \"tok-secret\", from = \"+15550000000\", api_base = {api_base:?} }}\n",
        plugin("sms_adapter")
    ));
    let server = Server::start(&config);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;

    let (status, body) = sms_webhook(&server, "SM1", "My parcel is late").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<Response>"), "{body}");
    let offer = alice.events.next_of("offer").await;
    assert_eq!(offer["channel"], "sms");
    assert_eq!(offer["source"], "SMS");
    assert_eq!(offer["preview"], "My parcel is late");
    let id = offer["conversation"].as_u64().expect("id");

    // Twilio redelivers when unsure: the same MessageSid is stored once.
    assert_eq!(
        sms_webhook(&server, "SM1", "My parcel is late").await.0,
        200
    );
    let (_, messages) = server
        .admin(
            Method::GET,
            &format!("/admin/tenants/demo/conversations/{id}/messages"),
            None,
        )
        .await;
    assert_eq!(
        messages.as_array().map(Vec::len),
        Some(1),
        "stored once: {messages}"
    );
    // The messenger route is still the built-in one (static segment first).
    let resp = server
        .http
        .post(server.url("/channels/messenger/demo/webhook"))
        .body("{}")
        .send()
        .await
        .expect("messenger webhook");
    assert_eq!(resp.status().as_u16(), 401, "unsigned Messenger webhook");
    // A channel nobody serves.
    let resp = server
        .http
        .post(server.url("/channels/fax/demo/webhook"))
        .send()
        .await
        .expect("fax webhook");
    assert_eq!(resp.status().as_u16(), 404);

    alice
        .ok(&format!("/api/conversations/{id}/accept"), json!({}))
        .await;
    alice
        .ok(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": "On it & checking"}),
        )
        .await;
    let sent = wait_for_sent(&twilio, 1).await;
    let r = &sent[0];
    assert_eq!(r.path, "/2010-04-01/Accounts/AC123/Messages.json");
    // base64("AC123:tok-secret")
    assert_eq!(r.authorization, "Basic QUMxMjM6dG9rLXNlY3JldA==");
    assert!(
        r.content_type
            .starts_with("application/x-www-form-urlencoded"),
        "{r:?}"
    );
    let form: Vec<(String, String)> = url_form(&r.body);
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("To"), Some("+15551234567"), "{r:?}");
    assert_eq!(get("From"), Some("+15550000000"));
    assert_eq!(get("Body"), Some("On it & checking"));
    assert!(!server.logs().contains("tok-secret"), "no secret in logs");
    assert!(
        !server.logs().contains("parcel"),
        "no customer text in logs"
    );
}

#[tokio::test]
async fn an_sms_customers_number_never_reaches_an_agent_surface() {
    let (api_base, twilio) = stand_in_twilio().await;
    let config = config_with(&format!(
        "[[tenants.plugins]]\npath = {:?}\nroles = [\"channel\"]\nchannel = \"sms\"\nsource = \"SMS\"\nsettings = {{ account_sid = \"AC123\", auth_token = \"tok-secret\", from = \"+15550000000\", api_base = {api_base:?} }}\n",
        plugin("sms_adapter")
    ));
    let server = Server::start(&config);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    assert_eq!(sms_webhook(&server, "SM9", "hello").await.0, 200);
    let id = alice.events.next_of("offer").await["conversation"]
        .as_u64()
        .expect("id");
    alice
        .ok(&format!("/api/conversations/{id}/accept"), json!({}))
        .await;
    let started = alice.events.next_of("conversation_started").await;
    assert_eq!(started["customer"], "********4567", "a handle, masked");
    alice
        .ok(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": "Hi there"}),
        )
        .await;
    alice.events.next_of("message").await;
    // The reply still reaches the raw number.
    let sent = wait_for_sent(&twilio, 1).await;
    assert!(sent[0].body.contains("%2B15551234567"), "{:?}", sent[0]);

    let raw = "5551234567";
    for frame in &alice.events.seen {
        assert!(!frame.to_string().contains(raw), "agent frame: {frame}");
    }
    let (_, me) = alice.call(Method::GET, "/api/me", None).await;
    assert!(!me.to_string().contains(raw), "/api/me: {me}");
    let (_, one) = alice
        .call(Method::GET, &format!("/api/conversations/{id}"), None)
        .await;
    assert!(!one.to_string().contains(raw), "conversation: {one}");
    let (_, list) = server
        .admin(Method::GET, "/admin/tenants/demo/conversations", None)
        .await;
    assert!(!list.to_string().contains(raw), "admin list: {list}");
    assert_eq!(list[0]["customer"], "********4567");
}

/// Decode an `application/x-www-form-urlencoded` body.
fn url_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("utf8");
                out.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).expect("utf8")
}

fn router_c() -> PathBuf {
    repo().join("plugins/c-example/router.c")
}

/// The C router configured as `librouter.so` beside the configuration.
fn c_router_config() -> String {
    config_with("[[tenants.plugins]]\npath = \"librouter.so\"\nroles = [\"routing\"]\n")
}

#[tokio::test]
async fn reload_swaps_a_rebuilt_plugin_without_restart() {
    let dir = Server::new_dir("plugin-reload");
    let lib = dir.join("librouter.so");
    cc(&router_c(), &lib, &[]);
    let server = Server::start_in(dir, &c_router_config(), &[]);
    let mut agents = all_available(&server).await;

    // The first candidate: alice.
    let id = web_chat(&server, "v1", json!({})).await;
    let offer = agents[0].events.next_of("offer").await;
    assert_eq!(
        (offer["conversation"].as_u64(), offer["generation"].as_u64()),
        (Some(id), Some(1))
    );

    cc(
        &router_c(),
        &lib,
        &["PICK_LAST=1", "ROUTER_VERSION=\"2.0.0\""],
    );
    let (status, v) = server
        .admin(Method::POST, "/admin/tenants/demo/reload", None)
        .await;
    assert_eq!((status, v["generation"].as_u64()), (200, Some(2)), "{v}");

    // The last candidate now: carol.
    let id = web_chat(&server, "v2", json!({})).await;
    let offer = agents[2].events.next_of("offer").await;
    assert_eq!(
        (offer["conversation"].as_u64(), offer["generation"].as_u64()),
        (Some(id), Some(2))
    );
    let (_, v) = server
        .admin(Method::GET, "/admin/tenants/demo/scripts", None)
        .await;
    assert_eq!(v["plugins"][0]["version"], "2.0.0", "{v}");
    assert_eq!(v["generation"], 2);
}

/// A routing plugin built against the version 1 header: its descriptor as
/// that header declared it (the host now speaks version 2).
const ABI1: &str = include_str!("../plugins/sdk/testdata/abi_v1_router.c");

#[tokio::test]
async fn a_plugin_with_the_wrong_abi_is_refused_and_the_old_one_keeps_routing() {
    let dir = Server::new_dir("plugin-abi");
    let lib = dir.join("librouter.so");
    cc(&router_c(), &lib, &["PICK_LAST=1"]);
    let server = Server::start_in(dir.clone(), &c_router_config(), &[]);
    let mut agents = all_available(&server).await;
    let id = web_chat(&server, "v1", json!({})).await;
    assert_eq!(
        agents[2].events.next_of("offer").await["conversation"].as_u64(),
        Some(id)
    );

    let src = dir.join("abi1.c");
    std::fs::write(&src, ABI1).expect("write C source");
    cc(&src, &lib, &[]);
    let (status, v) = server
        .admin(Method::POST, "/admin/tenants/demo/reload", None)
        .await;
    assert_eq!(status, 422, "{v}");
    let e = &v["errors"][0];
    assert_eq!(e["file"], lib.display().to_string(), "{v}");
    assert_eq!(e["line"], Value::Null);
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("plugin speaks ABI version 1; this host speaks version 2")),
        "{v}"
    );

    // Generation 1 keeps routing (the last candidate: carol).
    let id = web_chat(&server, "v2", json!({})).await;
    let offer = agents[2].events.next_of("offer").await;
    assert_eq!(
        (offer["conversation"].as_u64(), offer["generation"].as_u64()),
        (Some(id), Some(1))
    );

    // `scripts check` says the same, in its `tenant: file:line: message` form.
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["scripts", "check", "--config"])
        .arg(dir.join("switchboard.toml"))
        .output()
        .expect("run scripts check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = stdout.lines().next().unwrap_or_default();
    assert!(
        line.starts_with(&format!("demo: {}:?: ", lib.display())) && line.contains("ABI version 1"),
        "{stdout}"
    );
}

#[test]
fn the_example_and_the_static_plugin_rules() {
    use switchboard::config::Config;
    let example = repo().join("examples/plugins.toml");
    let cfg = Config::load(Some(&example)).expect("examples/plugins.toml is valid");
    assert_eq!(cfg.tenants[0].plugins.len(), 2);

    let base = config_with("");
    let refused = |plugins: &str, base: &str| {
        Config::from_toml_str(&format!("{base}\n{plugins}\n"))
            .expect_err("refused")
            .to_string()
    };
    // A routing plugin and a routing script: refused, not a silent winner.
    let with_script = base.replace(
        "wrapup = \"wrapup/en.lua\"",
        "wrapup = \"wrapup/en.lua\"\nrouting = \"routing/skills.lua\"",
    );
    let e = refused(
        "[[tenants.plugins]]\npath = \"x.so\"\nroles = [\"routing\"]\n",
        &with_script,
    );
    assert!(e.contains("routing plugin and `routing` script"), "{e}");
    let e = refused(
        "[[tenants.plugins]]\npath = \"x.so\"\nroles = [\"channel\"]\n",
        &base,
    );
    assert!(e.contains("needs `channel"), "{e}");
    let e = refused(
        "[[tenants.plugins]]\npath = \"x.so\"\nroles = [\"channel\"]\nchannel = \"messenger\"\n",
        &base,
    );
    assert!(e.contains("other than webchat and messenger"), "{e}");
    let e = refused(
        "[[tenants.plugins]]\npath = \"x.so\"\nroles = [\"channel\"]\nchannel = \"sms\"\nqueue = \"nope\"\n",
        &base,
    );
    assert!(e.contains("queue \"nope\""), "{e}");
    let e = refused(
        "[[tenants.plugins]]\npath = \"x.so\"\nroles = [\"wrapup\"]\n",
        &base,
    );
    assert!(e.contains("wrap-up plugin and"), "{e}");
    // The demo has a `responses` script: a responses plugin beside it is refused.
    let e = refused(
        "[[tenants.plugins]]\npath = \"x.so\"\nroles = [\"responses\"]\n",
        &base,
    );
    assert!(
        e.contains("canned responses plugin and a `responses` script"),
        "{e}"
    );
}

#[tokio::test]
async fn agents_get_the_canned_responses_of_a_plugin() {
    let config = config_with(&format!(
        "[[tenants.plugins]]\npath = {:?}\nroles = [\"responses\"]\n",
        plugin("test_plugin")
    ))
    .replace("responses = \"responses/en.lua\"\n", "");
    let server = Server::start(&config);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let id = server.customer_says("v-canned", "Zoé", "hello").await;
    alice.events.next_of("offer").await;
    alice
        .ok(&format!("/api/conversations/{id}/accept"), json!({}))
        .await;
    let (status, v) = alice
        .call(
            Method::GET,
            &format!("/api/responses?conversation={id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let list = v["responses"].as_array().expect("responses");
    let codes: Vec<&str> = list.iter().filter_map(|r| r["code"].as_str()).collect();
    assert_eq!(codes, ["greet", "bye"], "{v}");
    assert_eq!(list[0]["text"], "Hello Zoé, Alice Martin here.");
    assert_eq!(list[1]["text"], "Goodbye from Support.");

    // Admins see the role among the plugin's.
    let (_, s) = server
        .admin(Method::GET, "/admin/tenants/demo/scripts", None)
        .await;
    let roles = &s["plugins"][0]["roles"];
    assert!(
        roles
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x == "responses")),
        "{s}"
    );
}

#[tokio::test]
async fn a_signed_sms_channel_refuses_unsigned_and_forged_webhooks() {
    let (api_base, _twilio) = stand_in_twilio().await;
    let public_url = "https://switchboard.example/channels/sms/demo/webhook";
    let config = config_with(&format!(
        "[[tenants.plugins]]\npath = {:?}\nroles = [\"channel\"]\nchannel = \"sms\"\nsettings = {{ account_sid = \"AC123\", auth_token = \"tok-secret\", from = \"+15550000000\", api_base = {api_base:?} }}\nsignature = {{ scheme = \"twilio\", secret = \"tok-secret\", url = {public_url:?} }}\n",
        plugin("sms_adapter")
    ));
    let server = Server::start(&config);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let form = |text: &str| {
        serde_urlencoded::to_string([
            ("AccountSid", "AC123"),
            ("MessageSid", "SM9"),
            ("From", "+15551234567"),
            ("To", "+15550000000"),
            ("Body", text),
        ])
        .expect("form")
    };
    let post = |body: String, sig: Option<String>| {
        let mut req = server
            .http
            .post(server.url("/channels/sms/demo/webhook"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(s) = sig {
            req = req.header("x-twilio-signature", s);
        }
        async move { req.send().await.expect("sms webhook").status().as_u16() }
    };
    let body = form("Where is my order?");
    let good =
        switchboard::webhook_auth::twilio_signature("tok-secret", public_url, body.as_bytes())
            .expect("signature");
    // Unsigned, signed with another token, or a body changed after signing.
    assert_eq!(post(body.clone(), None).await, 401);
    let forged = switchboard::webhook_auth::twilio_signature("other", public_url, body.as_bytes());
    assert_eq!(post(body.clone(), forged).await, 401);
    assert_eq!(post(form("Send me money"), Some(good.clone())).await, 401);
    let (_, list) = server
        .admin(Method::GET, "/admin/tenants/demo/conversations", None)
        .await;
    assert_eq!(list, serde_json::json!([]), "nothing stored");
    // Twilio's own signature passes.
    assert_eq!(post(body, Some(good)).await, 200);
    assert_eq!(
        alice.events.next_of("offer").await["preview"],
        "Where is my order?"
    );
}
