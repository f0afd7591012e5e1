//! Customers' attachments: fetched from the channel (Meta's CDN) when the
//! message arrives (or uploaded by a web chat visitor), stored where the
//! tenant's [`Storage`] says — files under `<data_dir>/attachments/<tenant>/`
//! for a node alone, the shared database for a cluster, so a tenant that
//! moves to another node still serves them — and served to the tenant's
//! agents at `/api/attachments/{id}`.
//!
//! **Invariant:** agents never get the channel's own address: every
//! attachment's `url` is Switchboard's copy. A fetch that fails (too
//! large, a type not allowed, unreachable) leaves a clear placeholder —
//! the attachment keeps its type, gets the title "Attachment unavailable
//! (…)" and its content is a short text saying so.
//! **Invariant:** the content is served with `Content-Disposition` and
//! `X-Content-Type-Options: nosniff`, and only to agents of the tenant
//! that received it (another tenant's id answers 404, like an unknown one).
//! **Invariant:** neither the channel's URL (it may carry a signature) nor
//! the content is logged.

use crate::store::Store;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::channel::InboundAttachment;
use switchboard_core::model::Attachment;

/// Largest attachment fetched from a channel (Meta's limit is 25 MB).
pub const MAX_FETCH_BYTES: u64 = 25 * 1024 * 1024;
/// Longest wait for one attachment's content.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Content types accepted from a channel, by prefix.
const ALLOWED: &[&str] = &[
    "image/",
    "video/",
    "audio/",
    "application/pdf",
    "text/plain",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.",
    "application/vnd.ms-excel",
    "application/zip",
    "application/octet-stream",
];

/// Whether a content type may be stored.
pub fn allowed(mime: &str) -> bool {
    let m = mime.trim().to_ascii_lowercase();
    // No active content, even from a channel.
    if m.starts_with("image/svg") || m.contains("html") || m.contains("javascript") {
        return false;
    }
    ALLOWED.iter().any(|p| m.starts_with(p))
}

/// What is kept next to the content.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    pub mime: String,
    #[serde(default)]
    pub name: Option<String>,
    pub size: u64,
    /// The web chat visitor (customer id) who uploaded it; only that
    /// visitor may attach it to a message. `None` for what a channel sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// For an agent's upload: the conversation it was uploaded for. Only a
    /// reply in that conversation may carry it, and only that
    /// conversation's web chat visitor may fetch it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<u64>,
    /// For an agent's upload: the customer of that conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
}

impl Meta {
    /// Whether web chat visitor `customer` may fetch this attachment: their
    /// own upload, or an agent's upload for one of their conversations.
    pub fn visible_to_visitor(&self, customer: &str) -> bool {
        self.owner.as_deref() == Some(customer)
            || (self.conversation.is_some() && self.customer.as_deref() == Some(customer))
    }
}

/// An upload as messages and agents see it.
pub fn upload_attachment(id: &str, meta: &Meta) -> Attachment {
    Attachment {
        id: id.to_string(),
        kind: if meta.mime.starts_with("image/") {
            "image"
        } else {
            "file"
        }
        .into(),
        url: url_of(id),
        name: meta.name.clone(),
        mime: Some(meta.mime.clone()),
        size: Some(meta.size),
        latitude: None,
        longitude: None,
        title: None,
    }
}

/// Largest file a web chat visitor may upload.
pub const MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024;

/// What an upload is, by its first bytes (never by its name or the type
/// the client claims): pictures (PNG, JPEG, GIF, WebP) and PDF documents.
/// Anything else is refused.
pub fn sniff(content: &[u8]) -> Option<(&'static str, &'static str)> {
    // Written out: the five signatures are all the web chat accepts, and a
    // crate that knows hundreds would make the allow-list harder to read.
    let starts = |sig: &[u8]| content.starts_with(sig);
    if starts(b"\x89PNG\r\n\x1a\n") {
        Some(("image/png", "image"))
    } else if starts(&[0xff, 0xd8, 0xff]) {
        Some(("image/jpeg", "image"))
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Some(("image/gif", "image"))
    } else if content.len() >= 12 && starts(b"RIFF") && &content[8..12] == b"WEBP" {
        Some(("image/webp", "image"))
    } else if starts(b"%PDF-") {
        Some(("application/pdf", "file"))
    } else {
        None
    }
}

/// A file name as a visitor gave it, made safe to show and to put in a
/// `Content-Disposition`: the last path segment, without control
/// characters or quotes, at most 100 characters.
pub fn clean_name(name: &str) -> Option<String> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = last
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .take(100)
        .collect();
    let clean = clean.trim().to_string();
    (!clean.is_empty() && clean != "." && clean != "..").then_some(clean)
}

/// A tenant's attachment folder.
pub fn folder(data_dir: &Path, tenant: &str) -> PathBuf {
    data_dir.join("attachments").join(tenant)
}

/// Ids are 32 lower-case hex digits: anything else is refused before a
/// path is built from it.
pub fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Where a tenant's attachments are kept. Every call blocks (files or a
/// database round trip): call it off the async worker threads.
#[derive(Clone)]
pub enum Storage {
    /// Files under `<data_dir>/attachments/<tenant>/` (one node alone).
    Files(PathBuf),
    /// The store every node of a cluster shares ([`Store::keeps_attachments`]).
    Shared(Arc<dyn Store>),
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Storage::Files(dir) => write!(f, "Files({})", dir.display()),
            Storage::Shared(_) => f.write_str("Shared"),
        }
    }
}

impl Storage {
    /// The shared store if it keeps attachments, else files under `data_dir`.
    pub fn new(store: &Arc<dyn Store>, data_dir: &Path) -> Storage {
        if store.keeps_attachments() {
            Storage::Shared(store.clone())
        } else {
            Storage::Files(data_dir.to_path_buf())
        }
    }

    /// Store `content` for `tenant`; the new id.
    pub fn save(&self, tenant: &str, content: Vec<u8>, meta: &Meta) -> std::io::Result<String> {
        let id = new_id();
        let json = serde_json::to_vec(meta).map_err(std::io::Error::other)?;
        match self {
            Storage::Files(data_dir) => {
                let dir = folder(data_dir, tenant);
                std::fs::create_dir_all(&dir)?;
                std::fs::write(dir.join(&id), content)?;
                std::fs::write(dir.join(format!("{id}.json")), json)?;
            }
            Storage::Shared(store) => {
                let json = String::from_utf8(json).map_err(std::io::Error::other)?;
                store
                    .put_attachment(tenant, &id, content, json)
                    .map_err(std::io::Error::other)?;
            }
        }
        Ok(id)
    }

    /// The stored content and its description.
    pub fn load(&self, tenant: &str, id: &str) -> Option<(Meta, Vec<u8>)> {
        if !valid_id(id) {
            return None;
        }
        match self {
            Storage::Files(data_dir) => {
                let dir = folder(data_dir, tenant);
                let meta: Meta =
                    serde_json::from_slice(&std::fs::read(dir.join(format!("{id}.json"))).ok()?)
                        .ok()?;
                let content = std::fs::read(dir.join(id)).ok()?;
                Some((meta, content))
            }
            Storage::Shared(store) => {
                let (meta, content) = Self::shared(store, tenant, id, true)?;
                Some((meta, content?))
            }
        }
    }

    /// The description of a stored attachment, without its content.
    pub fn load_meta(&self, tenant: &str, id: &str) -> Option<Meta> {
        if !valid_id(id) {
            return None;
        }
        match self {
            Storage::Files(data_dir) => {
                let path = folder(data_dir, tenant).join(format!("{id}.json"));
                serde_json::from_slice(&std::fs::read(path).ok()?).ok()
            }
            Storage::Shared(store) => Self::shared(store, tenant, id, false).map(|(m, _)| m),
        }
    }

    fn shared(
        store: &Arc<dyn Store>,
        tenant: &str,
        id: &str,
        content: bool,
    ) -> Option<(Meta, Option<Vec<u8>>)> {
        let (meta, content) = match store.attachment(tenant, id, content) {
            Ok(found) => found?,
            Err(e) => {
                tracing::warn!(tenant, error = %e, "attachment not read");
                return None;
            }
        };
        Some((serde_json::from_str(&meta).ok()?, content))
    }
}

/// Switchboard's address of an attachment.
pub fn url_of(id: &str) -> String {
    format!("/api/attachments/{id}")
}

/// The file name a URL path ends with, if it looks like one.
fn name_from_url(url: &reqwest::Url) -> Option<String> {
    let last = url.path_segments()?.next_back()?.to_string();
    (!last.is_empty() && last.contains('.') && last.len() <= 200).then_some(last)
}

/// Why a fetch gave no content.
fn fetch_failure(reason: &str) -> String {
    format!("Attachment unavailable ({reason})")
}

async fn fetch(
    client: &reqwest::Client,
    url: &str,
) -> Result<(Vec<u8>, String, Option<String>), String> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "invalid address".to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("invalid address".into());
    }
    let mut resp = client
        .get(parsed.clone())
        .send()
        .await
        .map_err(|_| "the channel could not be reached".to_string())?;
    if !resp.status().is_success() {
        return Err(format!("the channel answered {}", resp.status().as_u16()));
    }
    if resp.content_length().is_some_and(|n| n > MAX_FETCH_BYTES) {
        return Err("too large".into());
    }
    let mime = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "application/octet-stream".into());
    if !allowed(&mime) {
        return Err("type not allowed".into());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|_| "the transfer failed".to_string())?
    {
        if body.len() as u64 + chunk.len() as u64 > MAX_FETCH_BYTES {
            return Err("too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, mime, name_from_url(&parsed)))
}

/// Store what a channel message carries: content fetched, locations and
/// links kept as text. Never fails: a fetch that fails becomes a
/// placeholder.
pub async fn store_inbound(
    storage: &Storage,
    tenant: &str,
    list: Vec<InboundAttachment>,
) -> Vec<Attachment> {
    if list.is_empty() {
        return Vec::new();
    }
    let client = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .unwrap_or_default();
    let mut out = Vec::with_capacity(list.len());
    for a in list {
        let mut title = a.title.clone();
        let (content, meta) = match a.kind.as_str() {
            "location" => {
                let text = match (a.latitude, a.longitude) {
                    (Some(la), Some(lo)) => format!("geo:{},{}", la.0, lo.0),
                    _ => "geo:".into(),
                };
                (
                    text.into_bytes(),
                    Meta {
                        mime: "text/plain".into(),
                        name: Some("location.txt".into()),
                        size: 0,
                        owner: None,
                        conversation: None,
                        customer: None,
                    },
                )
            }
            "link" => {
                let text = a.url.clone().unwrap_or_default();
                (
                    text.into_bytes(),
                    Meta {
                        mime: "text/plain".into(),
                        name: Some("link.txt".into()),
                        size: 0,
                        owner: None,
                        conversation: None,
                        customer: None,
                    },
                )
            }
            _ => match a.url.as_deref() {
                None => {
                    title = Some(fetch_failure("no address"));
                    (
                        b"The attachment could not be fetched from the channel.".to_vec(),
                        Meta {
                            mime: "text/plain".into(),
                            name: None,
                            size: 0,
                            owner: None,
                            conversation: None,
                            customer: None,
                        },
                    )
                }
                Some(url) => match fetch(&client, url).await {
                    Ok((body, mime, name)) => (
                        body,
                        Meta {
                            mime,
                            name: a.name.clone().or(name),
                            size: 0,
                            owner: None,
                            conversation: None,
                            customer: None,
                        },
                    ),
                    Err(reason) => {
                        tracing::info!(tenant = %tenant, kind = %a.kind, reason = %reason, "attachment not fetched");
                        title = Some(fetch_failure(&reason));
                        (
                            b"The attachment could not be fetched from the channel.".to_vec(),
                            Meta {
                                mime: "text/plain".into(),
                                name: None,
                                size: 0,
                                owner: None,
                                conversation: None,
                                customer: None,
                            },
                        )
                    }
                },
            },
        };
        let meta = Meta {
            size: content.len() as u64,
            ..meta
        };
        let saved = {
            let (storage, tenant, stored) = (storage.clone(), tenant.to_string(), meta.clone());
            tokio::task::spawn_blocking(move || storage.save(&tenant, content, &stored))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        };
        let id = match saved {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(tenant = %tenant, error = %e, "attachment not stored");
                title = Some(fetch_failure("not stored"));
                String::new()
            }
        };
        let fetched = title
            .as_deref()
            .is_none_or(|t| !t.starts_with("Attachment unavailable"));
        out.push(Attachment {
            url: if id.is_empty() {
                String::new()
            } else {
                url_of(&id)
            },
            id,
            kind: a.kind,
            name: meta.name.clone(),
            mime: fetched.then(|| meta.mime.clone()),
            size: fetched.then_some(meta.size),
            latitude: a.latitude,
            longitude: a.longitude,
            title,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_content_is_never_allowed() {
        assert!(allowed("image/jpeg"));
        assert!(allowed("application/pdf"));
        assert!(!allowed("image/svg+xml"));
        assert!(!allowed("text/html"));
        assert!(!allowed("application/javascript"));
    }

    #[test]
    fn uploads_are_known_by_their_content_and_names_are_cleaned() {
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\nrest"),
            Some(("image/png", "image"))
        );
        assert_eq!(sniff(b"%PDF-1.7"), Some(("application/pdf", "file")));
        assert_eq!(
            sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(("image/webp", "image"))
        );
        assert_eq!(sniff(b"<html><script>"), None);
        assert_eq!(sniff(b"RIFF"), None);
        assert_eq!(clean_name("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(clean_name("C:\\x\\a\"b\n.pdf").as_deref(), Some("ab.pdf"));
        assert_eq!(clean_name("..").as_deref(), None);
    }

    #[test]
    fn ids_are_checked_before_any_path_is_built() {
        assert!(valid_id("0123456789abcdef0123456789abcdef"));
        assert!(!valid_id("../../../../etc/passwd"));
        assert!(!valid_id("0123456789ABCDEF0123456789ABCDEF"));
    }
}
