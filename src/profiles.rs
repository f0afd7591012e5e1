//! Who a Messenger customer is: the User Profile API
//! (`GET {graph}/{version}/{PSID}?fields=first_name,last_name,profile_pic`),
//! asked once per new customer, the answer cached, and the
//! `appsecret_proof` every Graph API call carries.
//!
//! **Invariant:** a new customer's offer never waits more than
//! [`LOOKUP_TIMEOUT`] for the profile: on a timeout or any failure the name
//! stays the engine's default ("Customer") and the reason is counted in
//! `switchboard_profile_lookup_failures_total{tenant, reason}`.
//! **Invariant:** neither the access token, nor the URL that carries it,
//! nor the name the API answered is logged.

use crate::config::MessengerConfig;
use crate::metrics::Metrics;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_core::lua::sb::hmac_sha256_hex;

/// Longest wait for the User Profile API before the offer goes out
/// without the name.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a failed lookup is not retried for the same customer (so a
/// Graph API outage does not slow every message down).
pub const RETRY_AFTER: Duration = Duration::from_secs(300);
/// Most customers remembered per server (the oldest half is dropped past it).
pub const MAX_CACHED: usize = 50_000;
/// Longest name kept (Meta's names are short; anything longer is cut).
const MAX_NAME_CHARS: usize = 100;

/// `appsecret_proof`: the hex HMAC-SHA256 of the access token keyed by the
/// app secret (Meta's "Securing Graph API Requests").
pub fn appsecret_proof(app_secret: &str, access_token: &str) -> String {
    hmac_sha256_hex(app_secret.as_bytes(), access_token.as_bytes())
}

/// What the User Profile API told about a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Meta's CDN address of the picture (expires; never shown as such).
    pub profile_pic: Option<String>,
}

impl Profile {
    /// "First Last", or `None` when the API gave neither.
    pub fn name(&self) -> Option<String> {
        let parts: Vec<&str> = [&self.first_name, &self.last_name]
            .into_iter()
            .flatten()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(" ").chars().take(MAX_NAME_CHARS).collect())
    }
}

/// Why a lookup gave no name (the metric's `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No answer within [`LOOKUP_TIMEOUT`].
    Timeout,
    /// Connection refused, DNS, TLS…
    Unreachable,
    /// The API answered an error status (a PSID without consent, a bad token).
    Rejected,
    /// The answer was not a profile.
    Invalid,
    /// A recent lookup for this customer failed; not asked again yet.
    RecentlyFailed,
}

impl Failure {
    pub fn name(self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Unreachable => "unreachable",
            Failure::Rejected => "rejected",
            Failure::Invalid => "invalid",
            Failure::RecentlyFailed => "recently_failed",
        }
    }
}

#[derive(Debug, Clone)]
enum Cached {
    Known(Profile),
    Failed(Instant),
}

/// The profile cache and the client that fills it, for every tenant.
#[derive(Debug)]
pub struct Profiles {
    client: reqwest::Client,
    /// By (tenant, PSID).
    cache: Mutex<HashMap<(String, String), Cached>>,
    metrics: Arc<Metrics>,
}

impl Profiles {
    pub fn new(metrics: Arc<Metrics>) -> Profiles {
        let client = reqwest::Client::builder()
            .timeout(LOOKUP_TIMEOUT)
            .build()
            .unwrap_or_default();
        Profiles {
            client,
            cache: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn cached(&self, key: &(String, String)) -> Option<Cached> {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    fn remember(&self, key: (String, String), value: Cached) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED {
            // No order is kept: dropping any half bounds memory, and a
            // dropped customer is only asked again.
            let drop: Vec<_> = cache.keys().take(MAX_CACHED / 2).cloned().collect();
            for k in drop {
                cache.remove(&k);
            }
        }
        cache.insert(key, value);
    }

    /// The customer's display name, from the cache or the User Profile API
    /// (at most [`LOOKUP_TIMEOUT`]); `None` on failure (counted).
    pub async fn name_of(&self, tenant: &str, cfg: &MessengerConfig, psid: &str) -> Option<String> {
        match self.profile(tenant, cfg, psid).await {
            Ok(p) => p.name(),
            Err(f) => {
                tracing::info!(tenant = %tenant, reason = f.name(), "messenger profile lookup failed");
                self.metrics
                    .profile_failures
                    .get_or_create(&crate::metrics::ReasonLabels {
                        tenant: tenant.to_string(),
                        reason: f.name().to_string(),
                    })
                    .inc();
                None
            }
        }
    }

    /// The customer's profile, from the cache or the API.
    pub async fn profile(
        &self,
        tenant: &str,
        cfg: &MessengerConfig,
        psid: &str,
    ) -> Result<Profile, Failure> {
        let key = (tenant.to_string(), psid.to_string());
        match self.cached(&key) {
            Some(Cached::Known(p)) => return Ok(p),
            Some(Cached::Failed(at)) if at.elapsed() < RETRY_AFTER => {
                return Err(Failure::RecentlyFailed)
            }
            _ => {}
        }
        let answer = tokio::time::timeout(LOOKUP_TIMEOUT, self.ask(cfg, psid))
            .await
            .unwrap_or(Err(Failure::Timeout));
        match &answer {
            Ok(p) => self.remember(key, Cached::Known(p.clone())),
            Err(_) => self.remember(key, Cached::Failed(Instant::now())),
        }
        answer
    }

    async fn ask(&self, cfg: &MessengerConfig, psid: &str) -> Result<Profile, Failure> {
        let mut url = reqwest::Url::parse(cfg.graph_api_base()).map_err(|_| Failure::Invalid)?;
        url.path_segments_mut()
            .map_err(|_| Failure::Invalid)?
            .pop_if_empty()
            .push(&cfg.graph_api_version)
            .push(psid);
        url.query_pairs_mut()
            .append_pair("fields", "first_name,last_name,profile_pic")
            .append_pair("access_token", &cfg.access_token)
            .append_pair(
                "appsecret_proof",
                &appsecret_proof(&cfg.app_secret, &cfg.access_token),
            );
        let resp = self.client.get(url).send().await.map_err(|e| {
            if e.is_timeout() {
                Failure::Timeout
            } else {
                Failure::Unreachable
            }
        })?;
        if !resp.status().is_success() {
            return Err(Failure::Rejected);
        }
        let v: serde_json::Value = resp.json().await.map_err(|e| {
            if e.is_timeout() {
                Failure::Timeout
            } else {
                Failure::Invalid
            }
        })?;
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        if !v.is_object() {
            return Err(Failure::Invalid);
        }
        Ok(Profile {
            first_name: field("first_name"),
            last_name: field("last_name"),
            profile_pic: field("profile_pic"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proof_is_the_hex_hmac_of_the_token() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
        assert_eq!(
            appsecret_proof("key", "The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn names_join_what_the_api_gave() {
        let p = |f: Option<&str>, l: Option<&str>| Profile {
            first_name: f.map(str::to_string),
            last_name: l.map(str::to_string),
            profile_pic: None,
        };
        assert_eq!(
            p(Some("Peter"), Some("Chang")).name().as_deref(),
            Some("Peter Chang")
        );
        assert_eq!(p(Some("Peter"), None).name().as_deref(), Some("Peter"));
        assert_eq!(p(Some(" "), None).name(), None);
        assert_eq!(p(None, None).name(), None);
    }
}
