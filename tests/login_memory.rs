//! Password work with bounded memory (regression: 300 logins, 16 at a
//! time, took the server from 52 MB to 2.5 GB and it stayed there), and
//! configurations with hundreds of plain passwords that start (they took
//! 54 s and 17.5 GB: each was hashed with argon2 at start). Start-up time
//! is measured by the load generator (README "Performance"), not here.

mod common;
use common::*;
use futures_util::stream::{self, StreamExt};

/// Agents of `acme` (a shift logging in).
const AGENTS: usize = 16;

/// The demo tenant plus `acme` with agents `z0`… whose passwords are real
/// argon2 hashes (the demo's plain passwords are checked without argon2).
fn config() -> String {
    let hash = switchboard::auth::hash_password("zoe-pass").expect("hash");
    let mut cfg = demo_config()
        + "\n[[tenants]]\nid = \"acme\"\ndefault_queue = \"sales\"\n\n[[tenants.queues]]\nid = \"sales\"\n";
    for i in 0..AGENTS {
        cfg += &format!(
            "\n[[tenants.agents]]\nid = \"z{i}\"\npassword_hash = \"{hash}\"\nqueues = [\"sales\"]\n"
        );
    }
    cfg
}

#[tokio::test]
async fn a_thousand_argon2_logins_leave_memory_where_it_was() {
    let server = Server::start(&config());
    let before = rss_kib(server.pid());
    assert!(before > 0, "reads /proc");
    let statuses: Vec<u16> = stream::iter(0..1000)
        .map(|i| {
            let server = &server;
            async move {
                let agent = format!("z{}", i % AGENTS);
                try_login(server, "acme", &agent, "zoe-pass").await.0
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let after = rss_kib(server.pid());
    // 16 at a time fit in the pool's queue: none is turned away.
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let grown_mib = after.saturating_sub(before) / 1024;
    eprintln!(
        "RSS before {} MiB, after 1000 logins {} MiB",
        before / 1024,
        after / 1024
    );
    assert!(grown_mib < 100, "RSS grew by {grown_mib} MiB");
}

#[tokio::test]
async fn too_many_logins_at_once_are_told_to_come_back() {
    let server = Server::start(&config());
    // One address has at most 20 attempts in flight (its login limit), so
    // the crowd comes from 30 loopback addresses: far more at once than
    // the workers and their queue (16 per worker) hold.
    let clients: Vec<reqwest::Client> = (2..32u8)
        .map(|i| {
            reqwest::Client::builder()
                .local_address(std::net::IpAddr::from([127, 0, 0, i]))
                .build()
                .expect("client")
        })
        .collect();
    let url = server.url("/api/login");
    let tries = (0..clients.len() * AGENTS).map(|i| {
        let req = clients[i % clients.len()]
            .post(&url)
            .json(&serde_json::json!(
                {"tenant": "acme", "agent": format!("z{}", i % AGENTS), "password": "zoe-pass"}
            ));
        async move {
            let r = req.send().await.expect("login");
            let status = r.status().as_u16();
            let retry = r.headers().get("retry-after").cloned();
            (status, retry, r.json::<serde_json::Value>().await.ok())
        }
    });
    let answers = futures_util::future::join_all(tries).await;
    let busy: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 503).collect();
    assert!(!busy.is_empty(), "the queue is bounded");
    for (_, retry, body) in &busy {
        assert!(retry.is_some(), "Retry-After");
        assert!(body.as_ref().is_some_and(|b| b["error"].is_string()));
    }
    // The others got in, or were asked to retry in a second because the
    // same account had five attempts in flight.
    for (status, retry, _) in &answers {
        match status {
            200 | 503 => {}
            429 => assert_eq!(retry.as_ref().and_then(|v| v.to_str().ok()), Some("1")),
            other => panic!("unexpected {other}"),
        }
    }
}

/// 300 tenants of 3 agents with plain passwords start and log in.
#[tokio::test]
async fn three_hundred_tenants_with_plain_passwords_start() {
    let mut cfg =
        String::from("listen = \"127.0.0.1:0\"\ndata_dir = \"./data\"\ntest_clock = true\n");
    for t in 0..300 {
        cfg += &format!(
            "\n[[tenants]]\nid = \"t{t}\"\ndefault_queue = \"q\"\n\n[[tenants.queues]]\nid = \"q\"\n"
        );
        for a in 0..3 {
            cfg += &format!(
                "\n[[tenants.agents]]\nid = \"a{a}\"\npassword = \"pw-{t}-{a}\"\nqueues = [\"q\"]\n"
            );
        }
    }
    let server = Server::start(&cfg);
    assert_eq!(try_login(&server, "t299", "a2", "pw-299-2").await.0, 200);
    assert_eq!(try_login(&server, "t299", "a2", "pw-299-1").await.0, 401);
    assert_eq!(try_login(&server, "t7", "nobody", "pw-7-0").await.0, 401);
    assert!(
        server
            .logs()
            .contains("production configurations should give `password_hash`"),
        "one warning about plain passwords"
    );
}
