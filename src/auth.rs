//! Agent authentication: argon2 password hashes, random session tokens
//! stored hashed (so a leaked database holds no usable token), expiry,
//! logout, and a limit on failed logins per account.

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
    failures: Mutex<HashMap<(String, String), Vec<Millis>>>,
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
            failures: Mutex::new(HashMap::new()),
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

    /// Seconds to wait when this account has failed too often, else `None`.
    pub fn locked_out(&self, tenant: &str, agent: &str, now: Millis) -> Option<u64> {
        let mut f = lock(&self.failures);
        let list = f.entry((tenant.into(), agent.into())).or_default();
        list.retain(|t| t + FAILURE_WINDOW_MS > now);
        if list.len() >= MAX_FAILURES {
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

    pub fn record_failure(&self, tenant: &str, agent: &str, now: Millis) {
        let mut f = lock(&self.failures);
        // Bound memory: forget accounts with no recent failure.
        if f.len() > 10_000 {
            f.retain(|_, v| v.iter().any(|t| t + FAILURE_WINDOW_MS > now));
        }
        f.entry((tenant.into(), agent.into()))
            .or_default()
            .push(now);
    }

    pub fn clear_failures(&self, tenant: &str, agent: &str) {
        lock(&self.failures).remove(&(tenant.to_string(), agent.to_string()));
    }
}
