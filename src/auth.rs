//! Agent authentication: argon2 password hashes, random session tokens
//! stored hashed (so a leaked database holds no usable token), expiry,
//! logout, and limits on failed logins per account and per address.

use crate::store::Store;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use switchboard_core::model::Millis;

/// Failed logins allowed per account within [`FAILURE_WINDOW_MS`].
pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW_MS: Millis = 60_000;
/// Failed logins allowed per client address within [`FAILURE_WINDOW_MS`],
/// whatever the accounts (password spraying). Behind a reverse proxy every
/// client shares the proxy's address: raise it or rate-limit at the proxy.
pub const MAX_FAILURES_PER_ADDRESS: usize = 20;

/// A logged-in agent.
#[derive(Debug, Clone)]
pub struct Session {
    pub tenant: String,
    pub agent: String,
    pub expires_at: Millis,
}

/// Hash a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
}

/// Check a password against a PHC hash.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Sessions in memory, mirrored in the store so they survive a restart.
#[derive(Debug)]
pub struct Sessions {
    by_hash: Mutex<HashMap<String, Session>>,
    store: Arc<Store>,
    ttl_ms: Millis,
    accounts: FailureLimiter,
    addresses: FailureLimiter,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each critical section is one map operation: a poisoned lock cannot
    // hold a half-made change.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sessions {
    /// Load the sessions still valid at `now`.
    pub fn load(store: Arc<Store>, ttl_ms: Millis, now: Millis) -> anyhow::Result<Sessions> {
        let by_hash = store
            .live_sessions(now)?
            .into_iter()
            .map(|(h, tenant, agent, expires_at)| {
                (
                    h,
                    Session {
                        tenant,
                        agent,
                        expires_at,
                    },
                )
            })
            .collect();
        Ok(Sessions {
            by_hash: Mutex::new(by_hash),
            store,
            ttl_ms,
            accounts: FailureLimiter::new(MAX_FAILURES),
            addresses: FailureLimiter::new(MAX_FAILURES_PER_ADDRESS),
        })
    }

    /// A new session; returns the token to give the client.
    pub fn create(&self, tenant: &str, agent: &str, now: Millis) -> anyhow::Result<String> {
        use rand::RngCore;
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let token = hex::encode(raw);
        let h = token_hash(&token);
        let expires_at = now + self.ttl_ms;
        self.store.save_session(&h, tenant, agent, expires_at)?;
        lock(&self.by_hash).insert(
            h,
            Session {
                tenant: tenant.into(),
                agent: agent.into(),
                expires_at,
            },
        );
        Ok(token)
    }

    /// The session of `token`, if it exists and has not expired.
    pub fn get(&self, token: &str, now: Millis) -> Option<Session> {
        let h = token_hash(token);
        let mut map = lock(&self.by_hash);
        match map.get(&h) {
            Some(s) if s.expires_at > now => Some(s.clone()),
            Some(_) => {
                map.remove(&h);
                drop(map);
                let _ = self.store.delete_session(&h);
                None
            }
            None => None,
        }
    }

    /// Revoke `token` (logout).
    pub fn revoke(&self, token: &str) {
        let h = token_hash(token);
        lock(&self.by_hash).remove(&h);
        if let Err(e) = self.store.delete_session(&h) {
            tracing::error!(error = %e, "could not delete a session");
        }
    }

    /// Seconds to wait when this account or this address has failed too
    /// often, else `None`.
    pub fn locked_out(&self, tenant: &str, agent: &str, addr: &str, now: Millis) -> Option<u64> {
        self.accounts
            .blocked(&account_key(tenant, agent), now)
            .or_else(|| self.addresses.blocked(addr, now))
    }

    pub fn record_failure(&self, tenant: &str, agent: &str, addr: &str, now: Millis) {
        self.accounts.record(&account_key(tenant, agent), now);
        self.addresses.record(addr, now);
    }

    /// A successful login clears its account's failures (not its
    /// address's: one valid account must not reset a password spray).
    pub fn clear_failures(&self, tenant: &str, agent: &str) {
        self.accounts.clear(&account_key(tenant, agent));
    }
}

fn account_key(tenant: &str, agent: &str) -> String {
    format!("{tenant}\u{0}{agent}")
}

/// Failed attempts per key within a sliding window.
#[derive(Debug)]
struct FailureLimiter {
    max: usize,
    failures: Mutex<HashMap<String, Vec<Millis>>>,
}

impl FailureLimiter {
    fn new(max: usize) -> Self {
        FailureLimiter {
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds until `key` may try again, if it is blocked.
    fn blocked(&self, key: &str, now: Millis) -> Option<u64> {
        let mut f = lock(&self.failures);
        let list = f.get_mut(key)?;
        list.retain(|t| t + FAILURE_WINDOW_MS > now);
        if list.len() >= self.max {
            let oldest = list.first().copied().unwrap_or(now);
            Some(
                (oldest + FAILURE_WINDOW_MS)
                    .saturating_sub(now)
                    .div_ceil(1000)
                    .max(1),
            )
        } else {
            None
        }
    }

    fn record(&self, key: &str, now: Millis) {
        let mut f = lock(&self.failures);
        // Bound memory: forget keys with no recent failure.
        if f.len() > 10_000 {
            f.retain(|_, v| v.iter().any(|t| t + FAILURE_WINDOW_MS > now));
        }
        f.entry(key.to_string()).or_default().push(now);
    }

    fn clear(&self, key: &str) {
        lock(&self.failures).remove(key);
    }
}
