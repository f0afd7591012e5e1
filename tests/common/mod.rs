//! Harness for end-to-end tests: the real `switchboard` binary started on a
//! loopback port with its own SQLite data folder, real HTTP and WebSocket
//! clients, and the server's test clock for timers (no sleeps).
#![allow(dead_code)] // each test file uses a different part of the harness

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

pub const ADMIN: &str = "test-admin-token";

/// How long a test waits for an expected event before failing: a bound on
/// a hang, not a timing assertion.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The demo configuration with the test clock on and a random port; its
/// scripts are the repository's `scripts/` (the config file is written to
/// a temporary folder, which relative paths would resolve against).
pub fn demo_config() -> String {
    let demo = include_str!("../../examples/demo.toml");
    demo.replace(
        "listen = \"127.0.0.1:8080\"",
        "listen = \"127.0.0.1:0\"\ntest_clock = true\n# Tests move the clock by days: sessions must outlive that.\nsession_ttl_secs = 31536000",
    )
    .replace(
        "scripts_dir = \"scripts\"",
        &format!("scripts_dir = {:?}", repo_scripts()),
    )
}

/// The demo configuration with a supervisor `sam` and an admin `ada`
/// (password `demo`, no queues of their own).
pub fn demo_with_staff() -> String {
    demo_config().replace(
        "[tenants.webchat]\nsource = \"Web chat\"",
        r#"[[tenants.agents]]
id = "sam"
name = "Sam Super"
password = "demo"
queues = []
role = "supervisor"

[[tenants.agents]]
id = "ada"
name = "Ada Admin"
password = "demo"
queues = []
role = "admin"

[tenants.webchat]
source = "Web chat""#,
    )
}

/// The repository's `scripts/` folder.
pub fn repo_scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts")
}

pub struct Server {
    pub base: String,
    pub dir: PathBuf,
    child: Child,
    pub http: reqwest::Client,
    /// Everything the server wrote to stderr (its logs), once stopped.
    log_path: PathBuf,
    /// The token the server issued to each web chat visitor, by the label
    /// the test gave it (the label is the test's handle, not an identity).
    visitors: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Remove the folders earlier test processes left in the temp folder
/// (`switchboard-{tag}-{pid}-{k}-{nanos}`, the pid no longer running): a
/// server is restarted in its folder, so none is removed while its test
/// runs, and a run of the suite left about 150 behind.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("switchboard-") else {
            continue;
        };
        let mut fields = rest.rsplitn(4, '-');
        let (Some(n), Some(k), Some(pid), Some(_tag)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let numbers = [n, k, pid].iter().all(|f| f.parse::<u128>().is_ok());
        if numbers && !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn unique_dir(tag: &str) -> PathBuf {
    static CLEANED: std::sync::Once = std::sync::Once::new();
    if cfg!(target_os = "linux") {
        CLEANED.call_once(remove_stale_dirs);
    }
    // The clock alone is not enough: two tests of one process starting in
    // the same tick got the same folder, and two servers one database.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir =
        std::env::temp_dir().join(format!("switchboard-{tag}-{}-{k}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

impl Server {
    pub fn start(config: &str) -> Server {
        Self::start_with_env(config, &[])
    }

    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Server {
        Self::start_in(unique_dir("e2e"), config, env)
    }

    /// Start (or restart) a server whose data lives in `dir`.
    pub fn start_in(dir: PathBuf, config: &str, env: &[(&str, &str)]) -> Server {
        let cfg_path = dir.join("switchboard.toml");
        let config = config.replace(
            "data_dir = \"./data\"",
            &format!("data_dir = {:?}", dir.join("data")),
        );
        std::fs::write(&cfg_path, config).expect("write config");
        let log_path = dir.join("server.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&cfg_path)
            .env("SWITCHBOARD_ADMIN_TOKEN", ADMIN)
            .env("SWITCHBOARD_LOG", "debug")
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start switchboard");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("server exited before listening")
                .expect("read stdout");
            if let Some(rest) = line.strip_prefix("Switchboard is listening on ") {
                break rest.trim().to_string();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            base,
            dir,
            child,
            http: reqwest::Client::new(),
            log_path,
            visitors: Default::default(),
        }
    }

    /// Keep talking as the visitors of `old` (a server on the same data
    /// that was stopped): their tokens survive a restart.
    pub fn adopt_visitors(&self, old: &Server) {
        let old = old.visitors.lock().expect("visitors").clone();
        self.visitors.lock().expect("visitors").extend(old);
    }

    /// Kill the server process abruptly (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A fresh folder for a server's data.
    pub fn new_dir(tag: &str) -> PathBuf {
        unique_dir(tag)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("{}{}", self.base.replacen("http", "ws", 1), path)
    }

    /// The server's log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("admin request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Move the server's test clock forward and run its timers.
    pub async fn advance(&self, ms: u64) {
        let (status, _) = self
            .admin(
                reqwest::Method::POST,
                "/admin/clock/advance",
                Some(json!({ "ms": ms })),
            )
            .await;
        assert_eq!(status, 200, "test clock");
    }

    /// A web chat message from the visitor the test calls `visitor`: its
    /// first message starts a new visitor (the label goes along as such)
    /// and the harness keeps the token the server issues; later ones carry
    /// that token. Returns the conversation.
    pub async fn customer_says(&self, visitor: &str, name: &str, text: &str) -> u64 {
        let (status, v) = self.webchat_post(visitor, name, text).await;
        assert_eq!(status, 202, "web chat message accepted: {v}");
        v["conversation"].as_u64().expect("conversation id")
    }

    /// A Messenger webhook body, signed with the demo tenant's app secret,
    /// posted to its webhook: (status, body of the answer).
    pub async fn messenger_deliver(&self, body: &str) -> (u16, String) {
        let resp = self
            .http
            .post(self.url("/channels/messenger/demo/webhook"))
            .header("content-type", "application/json")
            .header(
                "X-Hub-Signature-256",
                messenger_signature(body, "demo-secret"),
            )
            .body(body.to_string())
            .send()
            .await
            .expect("webhook");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// A Messenger customer's text message, delivered and acknowledged (200).
    pub async fn messenger_says(&self, psid: &str, mid: &str, text: &str) {
        let (body, _) = messenger_webhook(psid, mid, text);
        let (status, answer) = self.messenger_deliver(&body).await;
        assert_eq!(status, 200, "webhook acknowledged: {answer}");
    }

    /// Like [`Server::customer_says`], for any answer: (status, body).
    pub async fn webchat_post(&self, visitor: &str, name: &str, text: &str) -> (u16, Value) {
        let token = self.visitor_token(visitor);
        let mut req = self
            .http
            .post(self.url("/channels/webchat/demo/messages"))
            .json(&json!({"visitor": visitor, "text": text, "name": name}));
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("post web chat message");
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.expect("json");
        if token.is_none() {
            if let Some(t) = v["visitor_token"].as_str() {
                self.visitors
                    .lock()
                    .expect("visitors")
                    .insert(visitor.to_string(), t.to_string());
            }
        }
        (status, v)
    }

    /// The token issued to the visitor the test calls `visitor`.
    pub fn visitor_token(&self, visitor: &str) -> Option<String> {
        self.visitors
            .lock()
            .expect("visitors")
            .get(visitor)
            .cloned()
    }

    /// The events socket of a visitor that has written (so has a token).
    pub async fn visitor_events(&self, visitor: &str) -> Events {
        let token = self
            .visitor_token(visitor)
            .unwrap_or_else(|| panic!("{visitor} has not written yet: no token"));
        self.visitor_socket(&token).await
    }

    /// The demo tenant's web chat events socket for a visitor token.
    pub async fn visitor_socket(&self, token: &str) -> Events {
        Events::connect(&self.ws_url(&format!(
            "/channels/webchat/demo/events?visitor_token={token}"
        )))
        .await
    }
}

/// `X-Hub-Signature-256` of a Messenger webhook body.
pub fn messenger_signature(body: &str, app_secret: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(app_secret.as_bytes()).expect("hmac key");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A one-message Messenger webhook for the demo page and its signature.
pub fn messenger_webhook(psid: &str, mid: &str, text: &str) -> (String, String) {
    let body = json!({"object": "page", "entry": [{"id": "1000", "time": 1, "messaging": [
        {"sender": {"id": psid}, "recipient": {"id": "1000"}, "timestamp": 1,
         "message": {"mid": mid, "text": text}}
    ]}]})
    .to_string();
    let sig = messenger_signature(&body, "demo-secret");
    (body, sig)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket that collects JSON events.
pub struct Events {
    ws: Ws,
    pub seen: Vec<Value>,
}

impl Events {
    pub async fn connect(url: &str) -> Events {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connect");
        Events {
            ws,
            seen: Vec::new(),
        }
    }

    /// Wait for the next event of type `ty` (events of other types are kept
    /// in `seen`).
    pub async fn next_of(&mut self, ty: &str) -> Value {
        self.next_where(ty, |_| true).await
    }

    /// Wait for the next event of type `ty` that `pred` accepts.
    pub async fn next_where(&mut self, ty: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no {ty:?} event; saw {:#?}", self.seen))
                .expect("socket open")
                .expect("socket ok");
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).expect("event is JSON");
                self.seen.push(v.clone());
                if v["type"] == ty && pred(&v) {
                    return v;
                }
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// Send a JSON frame (the console's requests).
    pub async fn send(&mut self, v: &Value) {
        use futures_util::SinkExt;
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("send on the socket");
    }
}

/// A logged-in agent with its event socket.
pub struct AgentClient {
    pub tenant: String,
    pub name: String,
    pub token: String,
    pub events: Events,
    http: reqwest::Client,
    base: String,
}

impl AgentClient {
    pub async fn login(server: &Server, agent: &str) -> AgentClient {
        Self::login_to(server, "demo", agent, "demo").await
    }

    pub async fn login_to(
        server: &Server,
        tenant: &str,
        agent: &str,
        password: &str,
    ) -> AgentClient {
        let resp = server
            .http
            .post(server.url("/api/login"))
            .json(&json!({"tenant": tenant, "agent": agent, "password": password}))
            .send()
            .await
            .expect("login");
        assert_eq!(resp.status().as_u16(), 200, "login {agent}");
        let v: Value = resp.json().await.expect("json");
        let token = v["token"].as_str().expect("token").to_string();
        let mut events =
            Events::connect(&server.ws_url(&format!("/api/agent/events?token={token}"))).await;
        events.next_of("agent_state").await;
        AgentClient {
            tenant: tenant.to_string(),
            name: agent.to_string(),
            token,
            events,
            http: server.http.clone(),
            base: server.base.clone(),
        }
    }

    /// The same session, reconnected to a (restarted) server.
    pub async fn reconnect(server: &Server, tenant: &str, agent: &str, token: &str) -> AgentClient {
        let mut events =
            Events::connect(&server.ws_url(&format!("/api/agent/events?token={token}"))).await;
        events.next_of("agent_state").await;
        AgentClient {
            tenant: tenant.to_string(),
            name: agent.to_string(),
            token: token.to_string(),
            events,
            http: server.http.clone(),
            base: server.base.clone(),
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("agent request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn ok(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.post(path, body).await;
        assert_eq!(status, 200, "{} POST {path}: {v}", self.name);
        v
    }

    pub async fn available(&mut self) {
        let (status, v) = self
            .call(
                reqwest::Method::PUT,
                "/api/agent/state",
                Some(json!({"state": "available"})),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        let ev = self.events.next_of("agent_state").await;
        assert_eq!(ev["state"], "available");
    }
}

impl Server {
    /// The server's process id (to read its memory in /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The value of a `/metrics` series named `name` (or starting with
    /// it) for `tenant`, if the server exports one.
    pub async fn metric(&self, name: &str, tenant: &str) -> Option<u64> {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        let label = format!("tenant=\"{tenant}\"");
        text.lines()
            .filter(|l| l.starts_with(name) && l.contains(&label))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .next()
    }

    /// Open agent WebSockets of `tenant`, from `/metrics`.
    pub async fn agent_sockets(&self, tenant: &str) -> u64 {
        self.metric("switchboard_agent_sockets", tenant)
            .await
            .unwrap_or(0)
    }

    /// Wait until the server counts `n` open agent sockets for `tenant` (it
    /// sees a client's close a moment after the client sent it). A bound on
    /// a hang, not a timing assertion.
    pub async fn wait_agent_sockets(&self, tenant: &str, n: u64) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.agent_sockets(tenant).await != n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server never counted {n} agent sockets"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Who writes the first message of a test's conversation.
#[derive(Debug, Clone, Copy)]
pub enum Customer<'a> {
    /// A web chat visitor: the test's label for it and the name it gives.
    Webchat { visitor: &'a str, name: &'a str },
    /// A Messenger customer (its PSID) and its message's id, through the
    /// signed webhook of the demo page.
    Messenger { psid: &'a str, mid: &'a str },
}

impl<'a> Customer<'a> {
    pub fn webchat(visitor: &'a str, name: &'a str) -> Customer<'a> {
        Customer::Webchat { visitor, name }
    }

    pub fn messenger(psid: &'a str, mid: &'a str) -> Customer<'a> {
        Customer::Messenger { psid, mid }
    }
}

impl Server {
    /// `customer` writes `text`; the offer reaches `agent` (available):
    /// the conversation. For web chat, the offer is checked to be for the
    /// conversation the message started.
    pub async fn offered(
        &self,
        agent: &mut AgentClient,
        customer: Customer<'_>,
        text: &str,
    ) -> u64 {
        let started = match customer {
            Customer::Webchat { visitor, name } => {
                Some(self.customer_says(visitor, name, text).await)
            }
            Customer::Messenger { psid, mid } => {
                self.messenger_says(psid, mid, text).await;
                None
            }
        };
        let offered = agent.events.next_of("offer").await["conversation"]
            .as_u64()
            .expect("the offer's conversation");
        if let Some(id) = started {
            assert_eq!(offered, id, "the offer is for the customer's conversation");
        }
        offered
    }

    /// `agent` logs in, becomes available, is offered `customer`'s first
    /// message `text` and accepts it: the agent and the conversation.
    pub async fn handled_conversation(
        &self,
        agent: &str,
        customer: Customer<'_>,
        text: &str,
    ) -> (AgentClient, u64) {
        let mut client = AgentClient::login(self, agent).await;
        client.available().await;
        let id = self.handled(&mut client, customer, text).await;
        (client, id)
    }

    /// `customer` writes `text`; `agent` (available) is offered it and
    /// accepts it: the conversation.
    pub async fn handled(
        &self,
        agent: &mut AgentClient,
        customer: Customer<'_>,
        text: &str,
    ) -> u64 {
        let id = self.offered(agent, customer, text).await;
        agent.accept(id).await;
        id
    }
}

impl AgentClient {
    /// Accept the offer of conversation `id` (200).
    pub async fn accept(&self, id: u64) {
        self.ok(&format!("/api/conversations/{id}/accept"), json!({}))
            .await;
    }

    /// Wait for the next offer and accept it: its conversation.
    pub async fn accept_next_offer(&mut self) -> u64 {
        let id = self.events.next_of("offer").await["conversation"]
            .as_u64()
            .expect("the offer's conversation");
        self.accept(id).await;
        id
    }
}

/// A server process's resident memory in KiB (`VmRSS` of /proc/PID/status).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

impl Events {
    /// Wait for the server to close the socket; its close code, if it sent
    /// a close frame.
    pub async fn closed_by_server(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("the socket stayed open; saw {:#?}", self.seen));
            match next {
                None | Some(Err(_)) => return None,
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(Message::Text(t))) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&t) {
                        self.seen.push(v);
                    }
                }
                Some(Ok(_)) => {}
            }
        }
    }
}

/// Log in over HTTP only: (status, body).
pub async fn try_login(server: &Server, tenant: &str, agent: &str, password: &str) -> (u16, Value) {
    let resp = server
        .http
        .post(server.url("/api/login"))
        .json(&json!({"tenant": tenant, "agent": agent, "password": password}))
        .send()
        .await
        .expect("login request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

impl Server {
    /// Send a signal to the server process (`TERM`, `STOP`, `CONT`, …).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} {}", self.child.id());
    }

    /// Wait (at most `patience`) for the process to exit; whether it did.
    pub fn wait_exit(&mut self, patience: Duration) -> bool {
        let deadline = std::time::Instant::now() + patience;
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Wait until the server's outbox (its SQLite database, read-only) holds
/// nothing pending.
pub async fn server_outbox_empty(dir: &std::path::Path) {
    let path = dir.join("data").join("switchboard.db");
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let pending: Option<i64> = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|c| c.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0)))
        .ok();
        if pending == Some(0) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the outbox still holds {pending:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
