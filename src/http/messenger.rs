//! The Facebook Messenger channel (CONTRACT.md "Facebook Messenger"): the
//! webhook subscription handshake and signed webhook deliveries.
//!
//! The host checks `X-Hub-Signature-256` natively and in constant time
//! before anything else (401, nothing stored); the tenant's `messenger`
//! adapter script turns the payload into customer messages on the path
//! every adapter channel shares (`http::inbound`): stored before the 200.

use super::{AppError, Shared};
use crate::metrics::ChannelLabels;
use crate::tenant::ExecuteError;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use switchboard_core::channel::{HttpRequest, Verdict};
use switchboard_core::lua::sb::verify_sha256_signature;
use switchboard_core::model::{Millis, Receipt};
use switchboard_core::Command;

pub const CHANNEL: &str = "messenger";

pub fn routes() -> Router<Shared> {
    Router::new().route(
        "/channels/messenger/{tenant}/webhook",
        get(handshake).post(webhook),
    )
}

fn unavailable(e: impl std::fmt::Display, tenant: &str) -> AppError {
    tracing::warn!(tenant = %tenant, error = %e, "messenger adapter failed");
    AppError::Status(
        StatusCode::SERVICE_UNAVAILABLE,
        "channel adapter unavailable".into(),
    )
}

async fn handshake(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, AppError> {
    let t = state.tenant(&tenant)?.clone();
    if t.config.messenger.is_none() {
        return Err(AppError::NotFound("channel"));
    }
    let req = HttpRequest {
        method: "GET".into(),
        path: format!("/channels/messenger/{tenant}/webhook"),
        query,
        ..Default::default()
    };
    let verdict = tokio::task::spawn_blocking(move || {
        let gen = t.generation();
        gen.channel(CHANNEL).map(|a| a.verify(&req))
    })
    .await
    .map_err(|_| AppError::Conflict("adapter task failed".into()))?;
    Ok(match verdict {
        Some(Ok(Verdict::Respond(r))) => super::inbound::respond(r),
        Some(Ok(Verdict::Accept)) => {
            return Err(AppError::Status(
                StatusCode::FORBIDDEN,
                "verification failed".into(),
            ))
        }
        Some(Err(e)) => return Err(unavailable(e, &tenant)),
        None => return Err(AppError::NotFound("channel")),
    })
}

async fn webhook(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let t = state.tenant(&tenant)?.clone();
    let Some(cfg) = t.config.messenger.as_ref() else {
        return Err(AppError::NotFound("channel"));
    };
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !verify_sha256_signature(cfg.app_secret.as_bytes(), &body, signature) {
        tracing::info!(tenant = %tenant, "messenger webhook with a bad or missing signature");
        return Err(AppError::Unauthorized);
    }
    // Wrong shapes are dropped (and counted) before the adapter sees
    // them; a big batch goes to the adapter in chunks it can take.
    let prepared = prepare(&body);
    if prepared.skipped > 0 {
        tracing::info!(tenant = %tenant, skipped = prepared.skipped, "messenger events with a wrong shape skipped");
        t.metrics
            .family()
            .skipped_events
            .get_or_create(&ChannelLabels {
                tenant: tenant.clone(),
                channel: CHANNEL.into(),
            })
            .inc_by(prepared.skipped);
    }
    let path = format!("/channels/messenger/{tenant}/webhook");
    let requests = match prepared.chunks {
        None => vec![super::inbound::adapter_request(
            "POST",
            path,
            BTreeMap::new(),
            &headers,
            &body,
        )],
        Some(chunks) => chunks
            .iter()
            .map(|c| {
                super::inbound::adapter_request("POST", path.clone(), BTreeMap::new(), &headers, c)
            })
            .collect(),
    };
    let entry = super::inbound::Entry {
        channel: CHANNEL.into(),
        source: cfg.page_name.clone(),
        queue: cfg.queue.clone(),
        names: Some(super::inbound::Names {
            profiles: state.profiles.clone(),
        }),
    };
    let answer = super::inbound::handle_all(t.clone(), entry, requests).await?;
    if answer.status().is_success() {
        // After the batch's messages: a read mark covers what came before.
        store_receipts(&t, &body).await?;
    }
    Ok(answer)
}

/// The delivery and read receipts of a webhook body, in order: the PSID,
/// what it says and its watermark (Meta's clock, ms). Delivery receipts
/// are taken by their watermark ("every message sent before it was
/// delivered"), their `mids` aside: the Send API's message ids are not
/// kept. Wrong shapes are skipped (already counted by [`prepare`]).
fn receipts(body: &[u8]) -> Vec<(String, Receipt, Millis)> {
    let Ok(payload) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let entries = payload.get("entry").and_then(Value::as_array);
    for entry in entries.into_iter().flatten() {
        let events = entry.get("messaging").and_then(Value::as_array);
        for ev in events.into_iter().flatten().filter(|e| well_formed(e)) {
            let Some(psid) = ev["sender"]["id"].as_str() else {
                continue;
            };
            for (key, status) in [("delivery", Receipt::Delivered), ("read", Receipt::Read)] {
                if let Some(watermark) = ev.get(key).and_then(|r| r.get("watermark")) {
                    if let Some(ms) = watermark.as_u64() {
                        out.push((psid.to_string(), status, ms));
                    }
                }
            }
        }
    }
    out
}

/// Journal the receipts of a webhook (each one that changes something is a
/// `receipt` event to the conversation's agents), before the 200: Meta
/// redelivers what was not acknowledged, and a redelivered receipt
/// changes nothing.
async fn store_receipts(
    t: &std::sync::Arc<crate::tenant::Tenant>,
    body: &[u8],
) -> Result<(), AppError> {
    // Most webhooks are messages: no need to read them twice.
    if !body.windows(9).any(|w| w == b"watermark") {
        return Ok(());
    }
    for (customer, status, watermark) in receipts(body) {
        let command = Command::CustomerReceipt {
            channel: CHANNEL.into(),
            customer,
            status,
            watermark,
        };
        match t.execute(command).await {
            Ok(_) | Err(ExecuteError::Command(_)) => {}
            Err(e) => {
                tracing::warn!(tenant = %t.id(), channel = CHANNEL, "messenger receipt not stored");
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// Most messaging events given to the adapter in one call: a batch of any
/// size Meta may send (up to the body limit) is taken in calls of this
/// size, each well within a script's event limit and instruction budget.
pub const CHUNK_EVENTS: usize = 100;
/// Longest sender id accepted (PSIDs are about 16 digits).
const MAX_PSID_BYTES: usize = 64;
/// Messaging event kinds that carry no customer message: passed on, not
/// counted as wrong.
const OTHER_KINDS: &[&str] = &[
    "delivery",
    "read",
    "reaction",
    "optin",
    "referral",
    "account_linking",
    "policy_enforcement",
    "pass_thread_control",
    "take_thread_control",
    "request_thread_control",
    "app_roles",
    "game_play",
    "message_edit",
];

/// A webhook body made ready for the adapter.
#[derive(Debug, PartialEq)]
struct Prepared {
    /// The bodies to hand over in order; `None`: the original body as it is.
    chunks: Option<Vec<Vec<u8>>>,
    /// Messaging events (or entries) dropped for their shape.
    skipped: u64,
}

fn is_string_or_absent(v: &Value, key: &str) -> bool {
    v.get(key).is_none_or(|x| x.is_string())
}

/// Whether a messaging event has a shape the adapter can take: a sender
/// whose id is a short string, and a message or postback object whose
/// fields have their types (or another known kind of event).
fn well_formed(ev: &Value) -> bool {
    let Some(obj) = ev.as_object() else {
        return false;
    };
    let sender_ok = obj
        .get("sender")
        .and_then(|s| s.get("id"))
        .and_then(Value::as_str)
        .is_some_and(|id| {
            !id.is_empty() && id.len() <= MAX_PSID_BYTES && !id.chars().any(char::is_control)
        });
    if !sender_ok {
        return false;
    }
    if obj.get("timestamp").is_some_and(|t| !t.is_number()) {
        return false;
    }
    if let Some(m) = obj.get("message") {
        return m.is_object()
            && is_string_or_absent(m, "text")
            && is_string_or_absent(m, "mid")
            && m.get("is_echo").is_none_or(Value::is_boolean)
            && m.get("attachments")
                .is_none_or(|a| a.as_array().is_some_and(|l| l.iter().all(Value::is_object)));
    }
    if let Some(p) = obj.get("postback") {
        return p.is_object()
            && is_string_or_absent(p, "title")
            && is_string_or_absent(p, "payload")
            && is_string_or_absent(p, "mid");
    }
    OTHER_KINDS.iter().any(|k| obj.contains_key(*k))
}

/// Check the shapes of a page webhook and cut it into chunks of at most
/// [`CHUNK_EVENTS`] messaging events. A body that is not a page event is
/// left to the adapter (which refuses it).
fn prepare(body: &[u8]) -> Prepared {
    let as_is = Prepared {
        chunks: None,
        skipped: 0,
    };
    let Ok(Value::Object(mut payload)) = serde_json::from_slice::<Value>(body) else {
        return as_is;
    };
    if payload.get("object").and_then(Value::as_str) != Some("page") {
        return as_is;
    }
    let mut skipped = 0u64;
    let mut changed = false;
    // Each entry's fields but `messaging`, and its good events.
    let mut entries: Vec<(Map<String, Value>, Vec<Value>)> = Vec::new();
    // Taken apart, not copied: the chunks are built from the pieces.
    match payload.remove("entry") {
        None => {}
        Some(Value::Array(list)) => {
            for entry in list {
                let Value::Object(mut head) = entry else {
                    skipped += 1;
                    changed = true;
                    continue;
                };
                let events = match head.remove("messaging") {
                    None => Vec::new(),
                    Some(Value::Array(evs)) => {
                        let n = evs.len();
                        let good: Vec<Value> = evs.into_iter().filter(well_formed).collect();
                        if good.len() != n {
                            skipped += (n - good.len()) as u64;
                            changed = true;
                        }
                        good
                    }
                    Some(_) => {
                        skipped += 1;
                        changed = true;
                        Vec::new()
                    }
                };
                entries.push((head, events));
            }
        }
        Some(_) => {
            skipped += 1;
            changed = true;
        }
    }
    let total: usize = entries.iter().map(|(_, evs)| evs.len()).sum();
    if !changed && total <= CHUNK_EVENTS {
        return Prepared {
            chunks: None,
            skipped,
        };
    }
    // Fill chunks entry by entry; an entry split over chunks keeps its id
    // and time in each piece, its other fields in the first only.
    let mut chunks = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    let mut room = CHUNK_EVENTS;
    let mut top = payload.clone();
    let flush =
        |top: &mut Map<String, Value>, current: &mut Vec<Value>, chunks: &mut Vec<Vec<u8>>| {
            top.insert("entry".into(), Value::Array(std::mem::take(current)));
            chunks.push(Value::Object(top.clone()).to_string().into_bytes());
        };
    for (head, events) in entries {
        if events.is_empty() {
            current.push(Value::Object(head));
            continue;
        }
        let mut first = true;
        let mut rest = events.as_slice();
        while !rest.is_empty() {
            if room == 0 {
                flush(&mut top, &mut current, &mut chunks);
                room = CHUNK_EVENTS;
            }
            let n = room.min(rest.len());
            let mut piece = if first {
                head.clone()
            } else {
                head.iter()
                    .filter(|(k, _)| *k == "id" || *k == "time")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            };
            piece.insert("messaging".into(), Value::Array(rest[..n].to_vec()));
            current.push(Value::Object(piece));
            rest = &rest[n..];
            room -= n;
            first = false;
        }
    }
    if !current.is_empty() || chunks.is_empty() {
        flush(&mut top, &mut current, &mut chunks);
    }
    Prepared {
        chunks: Some(chunks),
        skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(psid: Value, n: usize) -> Value {
        json!({"sender": {"id": psid}, "recipient": {"id": "1000"}, "timestamp": 1,
               "message": {"mid": format!("m.{n}"), "text": "hi"}})
    }

    fn batch(events: Vec<Value>) -> Vec<u8> {
        json!({"object": "page", "entry": [{"id": "1000", "time": 1, "messaging": events}]})
            .to_string()
            .into_bytes()
    }

    fn chunk_events(p: &Prepared) -> Vec<usize> {
        p.chunks
            .as_ref()
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        let v: Value = serde_json::from_slice(c).unwrap_or_default();
                        v["entry"]
                            .as_array()
                            .map(|es| {
                                es.iter()
                                    .map(|e| e["messaging"].as_array().map_or(0, Vec::len))
                                    .sum()
                            })
                            .unwrap_or(0)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_small_good_batch_goes_as_it_is() {
        let body = batch(vec![event(json!("1"), 1), event(json!("2"), 2)]);
        assert_eq!(
            prepare(&body),
            Prepared {
                chunks: None,
                skipped: 0
            }
        );
        assert_eq!(prepare(b"not json").chunks, None);
    }

    #[test]
    fn wrong_shapes_are_skipped_and_counted() {
        let mut evs = vec![
            event(json!({"id": "1"}), 1),
            event(json!(12345), 2),
            event(json!(""), 3),
            json!({"sender": {"id": "4"}, "timestamp": 1}),
            json!({"sender": {"id": "5"}, "message": "hi"}),
            json!({"sender": {"id": "6"}, "message": {"text": 6}}),
            json!({"sender": "7", "message": {"text": "hi"}}),
            json!(8),
        ];
        evs.push(event(json!("good"), 9));
        evs.push(json!({"sender": {"id": "10"}, "read": {"watermark": 1}}));
        let p = prepare(&batch(evs));
        assert_eq!(p.skipped, 8);
        assert_eq!(chunk_events(&p), [2]);
    }

    #[test]
    fn receipts_are_read_in_order_and_wrong_shapes_left_out() {
        let body = batch(vec![
            json!({"sender": {"id": "1"}, "delivery": {"mids": ["m.1"], "watermark": 5}}),
            event(json!("2"), 2),
            json!({"sender": {"id": "3"}, "read": {"watermark": 7}}),
            json!({"sender": {"id": "4"}, "read": {"watermark": "soon"}}),
            json!({"sender": {"id": ""}, "read": {"watermark": 9}}),
            json!({"sender": {"id": "6"}, "delivery": {"mids": ["m.6"]}}),
        ]);
        assert_eq!(
            receipts(&body),
            [
                ("1".to_string(), Receipt::Delivered, 5),
                ("3".to_string(), Receipt::Read, 7)
            ]
        );
        assert!(receipts(b"not json").is_empty());
    }

    #[test]
    fn a_big_batch_is_cut_into_chunks_that_keep_every_event_in_order() {
        let evs: Vec<Value> = (0..250).map(|n| event(json!(n.to_string()), n)).collect();
        let p = prepare(&batch(evs));
        assert_eq!(p.skipped, 0);
        assert_eq!(chunk_events(&p), [100, 100, 50]);
        let mids: Vec<String> = p
            .chunks
            .iter()
            .flatten()
            .flat_map(|c| {
                let v: Value = serde_json::from_slice(c).unwrap_or_default();
                v["entry"][0]["messaging"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|e| e["message"]["mid"].as_str().map(str::to_string))
            .collect();
        let want: Vec<String> = (0..250).map(|n| format!("m.{n}")).collect();
        assert_eq!(mids, want);
    }
}
