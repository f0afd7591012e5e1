//! Login limits hold against parallel guesses: the attempt is reserved
//! before the password is checked (regression: 40 wrong passwords sent at
//! once all got 401, and the right one among 29 wrong ones got in).

mod common;
use common::*;
use futures_util::future::join_all;

/// The demo tenant plus `acme/zoe`, whose password is an argon2 hash (slow
/// to check, as in production: the race window is real).
fn config() -> String {
    let hash = switchboard::auth::hash_password("zoe-pass").expect("hash");
    demo_config()
        + &format!(
            r#"
[[tenants]]
id = "acme"
default_queue = "sales"

[[tenants.queues]]
id = "sales"

[[tenants.agents]]
id = "zoe"
password_hash = "{hash}"
queues = ["sales"]
"#
        )
}

async fn parallel_logins(server: &Server, passwords: &[&str]) -> Vec<u16> {
    let tries = passwords
        .iter()
        .map(|p| async move { try_login(server, "acme", "zoe", p).await.0 });
    join_all(tries).await
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test]
async fn forty_wrong_passwords_at_once_evaluate_at_most_five() {
    let server = Server::start(&config());
    let statuses = parallel_logins(&server, &["wrong"; 40]).await;
    assert_eq!(count(&statuses, 401), 5, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 35, "{statuses:?}");
    // Still locked, even for the right password.
    assert_eq!(try_login(&server, "acme", "zoe", "zoe-pass").await.0, 429);
    // Failed logins are logged with tenant, agent and client address,
    // never the password.
    let logs = server.logs();
    let failed: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("failed login"))
        .collect();
    assert_eq!(failed.len(), 5, "{logs}");
    for line in failed {
        for part in ["acme", "zoe", "127.0.0.1"] {
            assert!(line.contains(part), "{part} missing in {line}");
        }
        assert!(!line.contains("wrong"), "a password is logged: {line}");
    }
}

#[tokio::test]
async fn the_right_password_among_wrong_ones_is_no_way_around_the_limit() {
    let server = Server::start(&config());
    let mut passwords = vec!["wrong"; 29];
    passwords.insert(17, "zoe-pass");
    let statuses = parallel_logins(&server, &passwords).await;
    // At most five wrong passwords are evaluated; the right one gets in
    // only if it was among the first five reserved, else it gets 429.
    assert!(count(&statuses, 401) <= 5, "{statuses:?}");
    assert!(
        count(&statuses, 401) + count(&statuses, 200) <= 6,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.len(),
        count(&statuses, 401) + count(&statuses, 200) + count(&statuses, 429),
        "{statuses:?}"
    );
    if statuses[17] != 200 {
        assert_eq!(statuses[17], 429, "{statuses:?}");
        assert_eq!(count(&statuses, 401), 5, "{statuses:?}");
    }
}
