//! Password work with bounded CPU and memory.
//!
//! An argon2 verification costs ~19 MiB and tens of milliseconds. Done on
//! tokio's blocking threads, each call allocated its own buffer and the
//! allocator kept them: 300 logins took the process from 52 MB to 2.5 GB.
//! Here a fixed pool of workers, one per core, each owns one argon2 memory
//! buffer that it reuses for every verification; requests wait in a queue
//! of fixed length and are refused ([`Busy`]) past it. Memory is then
//! bounded by `workers × m_cost` whatever the load.
//!
//! Configured plain `password` entries are not hashed with argon2 at start
//! (900 of them took 54 s and 17.5 GB): they are kept as HMAC-SHA256 under a
//! random per-process key and compared in constant time. The plain text is
//! in the configuration file already, so this is no weaker; a warning says
//! that production configurations give `password_hash`.

use crate::config::Config;
use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

/// Most verification workers, whatever the cores: each keeps one argon2
/// buffer (19 MiB with default parameters), so memory stays under
/// `MAX_WORKERS × m_cost`.
pub const MAX_WORKERS: usize = 4;

/// Verifications waiting for a worker, per worker, before logins are
/// refused with 503.
pub const QUEUE_PER_WORKER: usize = 16;

/// Largest argon2 memory cost (KiB) a configured hash may ask for: a
/// worker's buffer grows to the largest hash it has verified.
const MAX_M_COST_KIB: u32 = 256 * 1024;

/// How an agent's password is checked.
#[derive(Clone)]
pub enum Credential {
    /// An argon2 PHC string from `password_hash`.
    Argon2(Arc<str>),
    /// HMAC-SHA256 of a configured plain `password` under the process key.
    Keyed([u8; 32]),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::Argon2(_) => "Credential::Argon2(..)",
            Credential::Keyed(_) => "Credential::Keyed(..)",
        })
    }
}

/// argon2 hash of a random password nobody knows, verified against when
/// the account does not exist (so that "no such agent" costs the same as
/// "wrong password").
const UNKNOWN_ACCOUNT_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c3dpdGNoYm9hcmQtbm8tYWNjb3VudA$ZYBd/MU9h0wZq8GNVvAbnr6RmDBqJYM2cnBU6RlYcbI";

/// The password work could not be queued: retry shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Every agent's credential, and the pool that checks passwords.
#[derive(Debug)]
pub struct Passwords {
    credentials: HashMap<(String, String), Credential>,
    /// Tenants with at least one plain password: their unknown accounts
    /// are checked like plain ones, so both answer in the same time.
    plain_tenants: HashSet<String>,
    key: [u8; 32],
    pool: Pool,
}

impl Passwords {
    /// Read the credentials of every configured agent (cheap: no argon2
    /// at start) and start the verification workers.
    pub fn from_config(cfg: &Config) -> Passwords {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
        let mut credentials = HashMap::new();
        let mut plain_tenants = HashSet::new();
        let mut plain = 0usize;
        for t in &cfg.tenants {
            for a in &t.agents {
                let cred = match (&a.password_hash, &a.password) {
                    (Some(h), _) => {
                        if PasswordHash::new(h).is_err() {
                            tracing::warn!(tenant = %t.id, agent = %a.id, "password_hash is not a PHC string: this agent cannot log in");
                        }
                        Credential::Argon2(h.as_str().into())
                    }
                    (None, Some(p)) => {
                        plain += 1;
                        plain_tenants.insert(t.id.clone());
                        Credential::Keyed(keyed(&key, p.as_bytes()))
                    }
                    (None, None) => continue,
                };
                credentials.insert((t.id.clone(), a.id.clone()), cred);
            }
        }
        if plain > 0 {
            tracing::warn!(
                agents = plain,
                "agents configured with a plain `password`: production configurations should give `password_hash` (argon2, see docs/config.md)"
            );
        }
        Passwords {
            credentials,
            plain_tenants,
            key,
            pool: Pool::start(workers()),
        }
    }

    /// Check `password` for an account, known or not. `Err(Busy)` when
    /// too many verifications are already waiting.
    pub async fn verify(&self, tenant: &str, agent: &str, password: &str) -> Result<bool, Busy> {
        let cred = self
            .credentials
            .get(&(tenant.to_string(), agent.to_string()));
        match cred {
            Some(Credential::Keyed(expected)) => Ok(bool::from(
                keyed(&self.key, password.as_bytes()).ct_eq(expected),
            )),
            Some(Credential::Argon2(phc)) => self.pool.verify(phc.clone(), password).await,
            None if self.plain_tenants.contains(tenant) => {
                // Same work as a plain account, and never a match.
                let _ = keyed(&self.key, password.as_bytes()).ct_eq(&[0u8; 32]);
                Ok(false)
            }
            None => self
                .pool
                .verify(UNKNOWN_ACCOUNT_HASH.into(), password)
                .await
                .map(|_| false),
        }
    }

    /// As [`Passwords::verify`], but against `set` (the argon2 hash an
    /// admin set, from the engine) when there is one.
    pub async fn verify_account(
        &self,
        tenant: &str,
        agent: &str,
        password: &str,
        set: Option<Arc<str>>,
    ) -> Result<bool, Busy> {
        match set {
            Some(phc) => self.pool.verify(phc, password).await,
            None => self.verify(tenant, agent, password).await,
        }
    }

    /// Number of verification workers.
    pub fn workers(&self) -> usize {
        self.pool.workers
    }
}

fn keyed(key: &[u8; 32], password: &[u8]) -> [u8; 32] {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        // HMAC takes keys of any length: unreachable.
        return [0; 32];
    };
    mac.update(password);
    mac.finalize().into_bytes().into()
}

/// One worker per core the process may use, at most [`MAX_WORKERS`].
fn workers() -> usize {
    std::thread::available_parallelism()
        .map(std::num::NonZeroUsize::get)
        .unwrap_or(1)
        .clamp(1, MAX_WORKERS)
}

struct Job {
    phc: Arc<str>,
    password: String,
    reply: oneshot::Sender<bool>,
}

/// Fixed worker threads fed by a queue of fixed length.
struct Pool {
    tx: SyncSender<Job>,
    workers: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("workers", &self.workers)
            .finish()
    }
}

impl Pool {
    fn start(workers: usize) -> Pool {
        let (tx, rx) = sync_channel::<Job>(workers * QUEUE_PER_WORKER);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-{i}"))
                .spawn(move || work(&rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password worker");
            }
        }
        Pool { tx, workers }
    }

    async fn verify(&self, phc: Arc<str>, password: &str) -> Result<bool, Busy> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            phc,
            password: password.to_string(),
            reply,
        };
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(Busy),
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!("no password worker is running");
                return Err(Busy);
            }
        }
        answer.await.map_err(|_| Busy)
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    // This worker's argon2 memory, reused for every verification.
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            rx.recv()
        };
        let Ok(job) = job else {
            return;
        };
        if job.reply.is_closed() {
            // The client went away while it waited: skip the work.
            continue;
        }
        let ok = verify_with(&mut memory, &job.phc, job.password.as_bytes());
        let _ = job.reply.send(ok);
    }
}

/// Verify `password` against a PHC string using `memory` as argon2's
/// working memory (grown when a hash needs more, never shrunk).
pub fn verify_with(memory: &mut Vec<Block>, phc: &str, password: &[u8]) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    if params.m_cost() > MAX_M_COST_KIB {
        tracing::warn!(
            m_cost = params.m_cost(),
            "a password hash asks for more argon2 memory than allowed"
        );
        return false;
    }
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params);
    if argon
        .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..blocks])
        .is_err()
    {
        return false;
    }
    bool::from(out.as_slice().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_memory_verifies_like_the_library() {
        let phc = crate::auth::hash_password("s3cret").expect("hash");
        let mut memory = Vec::new();
        for _ in 0..3 {
            assert!(verify_with(&mut memory, &phc, b"s3cret"));
            assert!(!verify_with(&mut memory, &phc, b"s3creT"));
        }
        assert!(!verify_with(&mut memory, UNKNOWN_ACCOUNT_HASH, b"s3cret"));
        assert!(!verify_with(&mut memory, "not a hash", b"s3cret"));
    }
}
