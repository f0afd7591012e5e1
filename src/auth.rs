//! Agent authentication: random session tokens stored hashed (so a leaked
//! database holds no usable token), expiry, logout of one or every session
//! of an agent, one-time WebSocket tickets, and limits on login attempts
//! per account and per address. Password checking itself is in
//! [`crate::passwords`].
//!
//! **Invariant:** a login attempt is reserved (checked against the limits
//! and counted) in one step under one lock *before* its password is
//! verified; only a success gives its slot back. However many requests
//! race, at most [`MAX_FAILURES`] passwords of one account are ever
//! evaluated per window (`tests/login_limits.rs`).

use crate::store::{Store, StoreError, StoredSession};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use switchboard_core::model::Millis;

/// Login attempts allowed per account within [`FAILURE_WINDOW_MS`]
/// (attempts in flight count; a successful one is given back).
pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW_MS: Millis = 60_000;
/// Login attempts allowed per client address within [`FAILURE_WINDOW_MS`],
/// whatever the accounts (password spraying). Behind a reverse proxy every
/// client shares the proxy's address: raise it or rate-limit at the proxy.
pub const MAX_FAILURES_PER_ADDRESS: usize = 20;
/// Lifetime of a WebSocket ticket (`POST /api/agent/events/ticket`).
pub const TICKET_TTL_MS: Millis = 30_000;

/// A logged-in agent.
#[derive(Debug, Clone)]
pub struct Session {
    /// The SHA-256 of the token: names the session (its sockets, the store
    /// row) without being a credential.
    pub id: String,
    pub tenant: String,
    pub agent: String,
    pub expires_at: Millis,
}

/// A password could not be hashed (argon2 refused its parameters).
#[derive(Debug, thiserror::Error)]
#[error("hashing a password: {0}")]
pub struct HashError(String);

/// Hash a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> String {
    use rand::RngCore;
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    hex::encode(raw)
}

/// A token (session or ticket) of `tenant`: `{tenant}.{64 hex}`. The
/// prefix is not a secret: it tells any node of a cluster which tenant
/// the token belongs to, so it can forward the request to the tenant's
/// owner without knowing the session (a tenant id is a slug: no `.`).
fn tenant_token(tenant: &str) -> String {
    format!("{tenant}.{}", new_token())
}

/// The tenant a session token or ticket names (its prefix), if any.
pub fn token_tenant(token: &str) -> Option<&str> {
    let (tenant, rest) = token.split_once('.')?;
    (crate::config::is_slug(tenant) && !rest.is_empty()).then_some(tenant)
}

/// The live sessions, indexed three ways; one lock for all of them.
#[derive(Debug, Default)]
struct SessionMap {
    by_id: HashMap<String, Session>,
    /// Session ids of each (tenant, agent).
    by_agent: HashMap<(String, String), Vec<String>>,
    /// Expiries of each tenant's sessions, soonest first.
    expiring: HashMap<String, BTreeSet<(Millis, String)>>,
}

impl SessionMap {
    fn insert(&mut self, s: Session) {
        self.by_agent
            .entry((s.tenant.clone(), s.agent.clone()))
            .or_default()
            .push(s.id.clone());
        self.expiring
            .entry(s.tenant.clone())
            .or_default()
            .insert((s.expires_at, s.id.clone()));
        self.by_id.insert(s.id.clone(), s);
    }

    fn remove(&mut self, id: &str) -> Option<Session> {
        let s = self.by_id.remove(id)?;
        let key = (s.tenant.clone(), s.agent.clone());
        if let Some(ids) = self.by_agent.get_mut(&key) {
            ids.retain(|i| i != id);
            if ids.is_empty() {
                self.by_agent.remove(&key);
            }
        }
        if let Some(set) = self.expiring.get_mut(&s.tenant) {
            set.remove(&(s.expires_at, s.id.clone()));
        }
        Some(s)
    }
}

/// Sessions in memory, mirrored in the store so they survive a restart.
#[derive(Debug)]
pub struct Sessions {
    map: Mutex<SessionMap>,
    /// One-time WebSocket tickets: hash of the ticket → (session id, expiry).
    tickets: Mutex<HashMap<String, (String, Millis)>>,
    store: Arc<dyn Store>,
    ttl_ms: Millis,
    attempts: Mutex<Attempts>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each critical section leaves its maps consistent before anything
    // that could panic: a poisoned lock holds no half-made change.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sessions {
    /// Load the sessions still valid at `now`.
    pub fn load(
        store: Arc<dyn Store>,
        ttl_ms: Millis,
        now: Millis,
    ) -> Result<Sessions, StoreError> {
        let mut map = SessionMap::default();
        for s in store.live_sessions(now)? {
            map.insert(Session {
                id: s.token_hash,
                tenant: s.tenant,
                agent: s.agent,
                expires_at: s.expires_at,
            });
        }
        Ok(Sessions {
            map: Mutex::new(map),
            tickets: Mutex::new(HashMap::new()),
            store,
            ttl_ms,
            attempts: Mutex::new(Attempts::default()),
        })
    }

    /// Take the sessions of `tenant` from the store (this node now serves
    /// it: they were created on the node that served it before).
    /// What memory held of the tenant is replaced: a session revoked on
    /// another node since this one last saw it must not come back.
    pub fn load_tenant(&self, tenant: &str, now: Millis) -> Result<usize, StoreError> {
        let stored = self.store.live_sessions(now)?;
        self.forget_tenant(tenant);
        let mut map = lock(&self.map);
        let mut n = 0;
        for s in stored.into_iter().filter(|s| s.tenant == tenant) {
            map.insert(Session {
                id: s.token_hash,
                tenant: s.tenant,
                agent: s.agent,
                expires_at: s.expires_at,
            });
            n += 1;
        }
        Ok(n)
    }

    /// Drop the sessions of `tenant` from memory, not from the store (this
    /// node no longer serves it; its new owner loads them).
    pub fn forget_tenant(&self, tenant: &str) {
        let mut map = lock(&self.map);
        let ids: Vec<String> = map
            .by_id
            .values()
            .filter(|s| s.tenant == tenant)
            .map(|s| s.id.clone())
            .collect();
        for id in ids {
            map.remove(&id);
        }
    }

    /// A new session; returns the token to give the client.
    pub fn create(&self, tenant: &str, agent: &str, now: Millis) -> Result<String, StoreError> {
        let token = tenant_token(tenant);
        let id = token_hash(&token);
        let expires_at = now + self.ttl_ms;
        self.store.save_session(&StoredSession {
            token_hash: id.clone(),
            tenant: tenant.into(),
            agent: agent.into(),
            expires_at,
        })?;
        lock(&self.map).insert(Session {
            id,
            tenant: tenant.into(),
            agent: agent.into(),
            expires_at,
        });
        Ok(token)
    }

    /// The session of `token`, if it exists and has not expired.
    pub fn get(&self, token: &str, now: Millis) -> Option<Session> {
        self.get_by_id(&token_hash(token), now)
    }

    fn get_by_id(&self, id: &str, now: Millis) -> Option<Session> {
        let mut map = lock(&self.map);
        match map.by_id.get(id) {
            Some(s) if s.expires_at > now => Some(s.clone()),
            Some(_) => {
                map.remove(id);
                drop(map);
                self.forget(id);
                None
            }
            None => None,
        }
    }

    /// Whether session `id` is live at `now`.
    pub fn is_live(&self, id: &str, now: Millis) -> bool {
        self.get_by_id(id, now).is_some()
    }

    fn forget(&self, id: &str) {
        if let Err(e) = self.store.delete_session(id) {
            tracing::error!(error = %e, "could not delete a session");
        }
    }

    /// End one session (logout); returns it if it was live.
    pub fn revoke(&self, id: &str) -> Option<Session> {
        let s = lock(&self.map).remove(id);
        self.forget(id);
        s
    }

    /// End every session of an agent; returns them.
    pub fn revoke_agent(&self, tenant: &str, agent: &str) -> Vec<Session> {
        let ended: Vec<Session> = {
            let mut map = lock(&self.map);
            let ids = map
                .by_agent
                .get(&(tenant.to_string(), agent.to_string()))
                .cloned()
                .unwrap_or_default();
            ids.iter().filter_map(|id| map.remove(id)).collect()
        };
        for s in &ended {
            self.forget(&s.id);
        }
        ended
    }

    /// Live sessions of an agent other than `except`.
    pub fn others(&self, tenant: &str, agent: &str, except: &str, now: Millis) -> usize {
        let map = lock(&self.map);
        map.by_agent
            .get(&(tenant.to_string(), agent.to_string()))
            .map(|ids| {
                ids.iter()
                    .filter(|id| *id != except)
                    .filter(|id| map.by_id.get(*id).is_some_and(|s| s.expires_at > now))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Whether the agent has a session live at `now`.
    pub fn has_live(&self, tenant: &str, agent: &str, now: Millis) -> bool {
        self.others(tenant, agent, "", now) > 0
    }

    /// Remove the tenant's sessions expired at `now`; returns them.
    pub fn expire(&self, tenant: &str, now: Millis) -> Vec<Session> {
        let ended: Vec<Session> = {
            let mut map = lock(&self.map);
            let due: Vec<String> = map
                .expiring
                .get(tenant)
                .map(|set| {
                    set.iter()
                        .take_while(|(at, _)| *at <= now)
                        .map(|(_, id)| id.clone())
                        .collect()
                })
                .unwrap_or_default();
            due.iter().filter_map(|id| map.remove(id)).collect()
        };
        for s in &ended {
            self.forget(&s.id);
        }
        ended
    }

    /// When the tenant's next session expires.
    pub fn next_expiry(&self, tenant: &str) -> Option<Millis> {
        lock(&self.map)
            .expiring
            .get(tenant)
            .and_then(|set| set.first().map(|(at, _)| *at))
    }

    /// A one-time ticket that opens one WebSocket of session `id` within
    /// [`TICKET_TTL_MS`].
    pub fn issue_ticket(&self, id: &str, now: Millis) -> String {
        let tenant = lock(&self.map).by_id.get(id).map(|s| s.tenant.clone());
        let ticket = match tenant {
            Some(t) => tenant_token(&t),
            None => new_token(),
        };
        let mut tickets = lock(&self.tickets);
        tickets.retain(|_, (_, expires)| *expires > now);
        tickets.insert(token_hash(&ticket), (id.to_string(), now + TICKET_TTL_MS));
        ticket
    }

    /// The session of a ticket, which is used up whatever the answer.
    pub fn redeem_ticket(&self, ticket: &str, now: Millis) -> Option<Session> {
        let (id, expires) = lock(&self.tickets).remove(&token_hash(ticket))?;
        if expires <= now {
            return None;
        }
        self.get_by_id(&id, now)
    }

    /// Reserve a login attempt for this account from this address: counted
    /// at once, before the password is checked. `Err(seconds)` when either
    /// limit is reached (nothing is counted then).
    pub fn reserve_attempt(
        &self,
        tenant: &str,
        agent: &str,
        addr: &str,
        now: Millis,
    ) -> Result<Attempt, u64> {
        lock(&self.attempts).reserve(&account_key(tenant, agent), addr, now)
    }

    /// Give an attempt back: its password was right, or it was never
    /// checked (the password workers were busy).
    pub fn forgive(&self, attempt: &Attempt) {
        lock(&self.attempts).forgive(attempt);
    }

    /// The attempt's password was wrong: it counts until it leaves the
    /// window.
    pub fn failed(&self, attempt: &Attempt) {
        lock(&self.attempts).failed(attempt);
    }
}

fn account_key(tenant: &str, agent: &str) -> String {
    format!("{tenant}\u{0}{agent}")
}

/// A reserved login attempt.
#[derive(Debug)]
pub struct Attempt {
    id: u64,
    account: String,
    addr: String,
}

/// One attempt in a window: when, which, and whether its password is
/// still being checked.
#[derive(Debug, Clone, Copy)]
struct Slot {
    at: Millis,
    id: u64,
    in_flight: bool,
}

/// Login attempts per account and per address within a sliding window.
#[derive(Debug, Default)]
struct Attempts {
    next: u64,
    accounts: HashMap<String, Vec<Slot>>,
    addresses: HashMap<String, Vec<Slot>>,
}

/// When a list is full, the seconds to wait: 1 while some of its attempts
/// are still being checked (a success gives its slot back), else until the
/// oldest failure leaves the window.
fn full(list: &mut Vec<Slot>, max: usize, now: Millis) -> Option<u64> {
    list.retain(|s| s.in_flight || s.at + FAILURE_WINDOW_MS > now);
    if list.len() < max {
        return None;
    }
    if list.iter().any(|s| s.in_flight) {
        return Some(1);
    }
    let oldest = list.first().map(|s| s.at).unwrap_or(now);
    Some(
        (oldest + FAILURE_WINDOW_MS)
            .saturating_sub(now)
            .div_ceil(1000)
            .max(1),
    )
}

impl Attempts {
    fn reserve(&mut self, account: &str, addr: &str, now: Millis) -> Result<Attempt, u64> {
        // Bound memory: forget keys with no recent attempt.
        for map in [&mut self.accounts, &mut self.addresses] {
            if map.len() > 10_000 {
                map.retain(|_, v| {
                    v.iter()
                        .any(|s| s.in_flight || s.at + FAILURE_WINDOW_MS > now)
                });
            }
        }
        let by_account = self.accounts.entry(account.to_string()).or_default();
        if let Some(secs) = full(by_account, MAX_FAILURES, now) {
            return Err(secs);
        }
        let by_addr = self.addresses.entry(addr.to_string()).or_default();
        if let Some(secs) = full(by_addr, MAX_FAILURES_PER_ADDRESS, now) {
            return Err(secs);
        }
        let slot = Slot {
            at: now,
            id: self.next,
            in_flight: true,
        };
        self.next += 1;
        by_addr.push(slot);
        self.accounts
            .entry(account.to_string())
            .or_default()
            .push(slot);
        Ok(Attempt {
            id: slot.id,
            account: account.to_string(),
            addr: addr.to_string(),
        })
    }

    fn lists(&mut self, a: &Attempt) -> impl Iterator<Item = &mut Vec<Slot>> {
        let account = self.accounts.get_mut(&a.account);
        let addr = self.addresses.get_mut(&a.addr);
        account.into_iter().chain(addr)
    }

    fn forgive(&mut self, a: &Attempt) {
        for list in self.lists(a) {
            list.retain(|s| s.id != a.id);
        }
    }

    fn failed(&mut self, a: &Attempt) {
        for list in self.lists(a) {
            for s in list.iter_mut().filter(|s| s.id == a.id) {
                s.in_flight = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_in_flight_count_and_a_success_gives_only_its_own_back() {
        let mut a = Attempts::default();
        let first: Vec<Attempt> = (0..MAX_FAILURES)
            .map(|_| a.reserve("t\0alice", "1.2.3.4", 0).expect("free slot"))
            .collect();
        assert!(
            a.reserve("t\0alice", "1.2.3.4", 0).is_err(),
            "all five in flight"
        );
        a.forgive(&first[0]);
        let again = a.reserve("t\0alice", "1.2.3.4", 0).expect("one slot back");
        for f in first.iter().skip(1).chain([&again]) {
            a.failed(f);
        }
        assert_eq!(
            a.reserve("t\0alice", "1.2.3.4", 1_000).map(|_| ()),
            Err(59),
            "five failures: wait for the oldest to leave the window"
        );
        assert_eq!(
            a.reserve("t\0alice", "1.2.3.4", FAILURE_WINDOW_MS)
                .map(|_| ()),
            Ok(())
        );
    }
}
