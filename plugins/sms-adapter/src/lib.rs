//! SMS as a channel, on Twilio's Programmable Messaging formats.
//!
//! Inbound: Twilio POSTs each incoming SMS/MMS to the number's webhook as
//! `application/x-www-form-urlencoded` (`MessageSid`, `AccountSid`, `From`,
//! `To`, `Body`, `NumMedia`, `MediaContentType0`…, `FromCity`,
//! `FromCountry`…) and reads TwiML back: an empty `<Response/>` sends no
//! automatic reply. The host checks `X-Twilio-Signature` natively before
//! the adapter sees a request (as for Messenger's signature); `verify` here
//! only refuses what is not a webhook of the configured account.
//!
//! Outbound: `POST {api_base}/2010-04-01/Accounts/{account_sid}/Messages.json`
//! with HTTP basic auth (`account_sid:auth_token`) and a form body
//! `To`, `From` (or `MessagingServiceSid`), `Body`. The form travels as the
//! JSON *string* `body` of the outgoing request with
//! `content-type: application/x-www-form-urlencoded`: the host must send
//! such a string as is.
//!
//! Settings (JSON at load): `account_sid`, `auth_token` (required), `from`
//! (the sending number) or `messaging_service_sid`, `api_base` (default
//! `https://api.twilio.com`, a stand-in server in tests).

use base64::Engine;
use serde::Deserialize;
use std::collections::BTreeMap;
use switchboard_plugin::wire::{
    ChannelEvent, ChannelRequest, HttpResponse, InboundAnswer, InboundMessage, OutboundAnswer,
    OutboundRequest, OutgoingRequest, Verdict,
};
use switchboard_plugin::{export_plugin, Error, Plugin, ROLE_CHANNEL};

/// Twilio's limit on an outgoing message body, in characters.
pub const MAX_BODY_CHARS: usize = 1600;
/// The TwiML that acknowledges a message without replying.
pub const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    account_sid: String,
    auth_token: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    messaging_service_sid: Option<String>,
    #[serde(default = "default_api_base")]
    api_base: String,
}

fn default_api_base() -> String {
    "https://api.twilio.com".into()
}

/// The plugin's instance: one Twilio account and sender.
#[derive(Debug)]
pub struct SmsAdapter {
    settings: Settings,
    authorization: String,
}

fn is_form(content_type: Option<&String>) -> bool {
    content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| {
            c.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn placeholder(content_type: &str) -> &'static str {
    match content_type.split('/').next().unwrap_or("") {
        "image" => "[image]",
        "video" => "[video]",
        "audio" => "[audio]",
        _ => "[file]",
    }
}

impl Plugin for SmsAdapter {
    const ROLES: u32 = ROLE_CHANNEL;

    fn create(settings: serde_json::Value) -> Result<Self, Error> {
        let settings: Settings =
            serde_json::from_value(settings).map_err(|e| Error::new(format!("settings: {e}")))?;
        if settings.account_sid.is_empty() || settings.auth_token.is_empty() {
            return Err("settings: account_sid and auth_token must not be empty".into());
        }
        if settings.from.is_none() == settings.messaging_service_sid.is_none() {
            return Err("settings: give exactly one of from and messaging_service_sid".into());
        }
        if !(settings.api_base.starts_with("https://") || settings.api_base.starts_with("http://"))
        {
            return Err("settings: api_base must be an http(s) URL".into());
        }
        let credentials = format!("{}:{}", settings.account_sid, settings.auth_token);
        let authorization = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        );
        Ok(SmsAdapter {
            settings,
            authorization,
        })
    }

    fn verify(&self, r: ChannelRequest) -> Result<Verdict, Error> {
        let req = r.request;
        if req.method != "POST" {
            return Ok(Verdict::Respond(HttpResponse::text(405, "POST only")));
        }
        if !is_form(req.headers.get("content-type")) {
            return Ok(Verdict::Respond(HttpResponse::text(
                415,
                "form body expected",
            )));
        }
        let account = form_urlencoded::parse(req.body.as_bytes())
            .find(|(k, _)| k == "AccountSid")
            .map(|(_, v)| v.into_owned());
        if account.as_deref() != Some(self.settings.account_sid.as_str()) {
            return Ok(Verdict::Respond(HttpResponse::text(403, "unknown account")));
        }
        Ok(Verdict::Accept)
    }

    fn inbound(&self, r: ChannelRequest) -> Result<InboundAnswer, Error> {
        let form: BTreeMap<String, String> = form_urlencoded::parse(r.request.body.as_bytes())
            .into_owned()
            .collect();
        let field = |k: &str| form.get(k).filter(|v| !v.is_empty());
        let customer = field("From").ok_or("webhook without From")?;
        let to = field("To").ok_or("webhook without To")?;
        let mut parts: Vec<&str> = Vec::new();
        if let Some(body) = field("Body") {
            parts.push(body);
        }
        let media: usize = form
            .get("NumMedia")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        for i in 0..media.min(10) {
            let kind = form
                .get(&format!("MediaContentType{i}"))
                .map(String::as_str)
                .unwrap_or("");
            parts.push(placeholder(kind));
        }
        let response = HttpResponse {
            status: 200,
            content_type: "text/xml".into(),
            body: EMPTY_TWIML.into(),
        };
        if parts.is_empty() {
            return Ok(InboundAnswer {
                events: Vec::new(),
                response,
            });
        }
        let mut cad = BTreeMap::new();
        cad.insert("sms_number".to_string(), to.clone());
        if let Some(sid) = field("MessageSid") {
            cad.insert("sms_message_sid".into(), sid.clone());
        }
        for (key, cad_key) in [
            ("FromCountry", "sms_from_country"),
            ("FromCity", "sms_from_city"),
        ] {
            if let Some(v) = field(key) {
                cad.insert(cad_key.into(), v.clone());
            }
        }
        Ok(InboundAnswer {
            events: vec![ChannelEvent::Message(InboundMessage {
                customer: customer.clone(),
                customer_name: None,
                text: parts.join(" "),
                entry_point: to.clone(),
                sent_at: None,
                cad,
                id: field("MessageSid").cloned(),
            })],
            response,
        })
    }

    fn outbound(&self, r: OutboundRequest) -> Result<OutboundAnswer, Error> {
        let m = r.message;
        if m.customer.is_empty() {
            return Ok(OutboundAnswer::Refuse(
                "no phone number for this customer".into(),
            ));
        }
        if m.text.chars().count() > MAX_BODY_CHARS {
            return Ok(OutboundAnswer::Refuse(format!(
                "an SMS body holds at most {MAX_BODY_CHARS} characters"
            )));
        }
        let s = &self.settings;
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("To", &m.customer);
        match (&s.from, &s.messaging_service_sid) {
            (Some(from), _) => form.append_pair("From", from),
            (None, Some(sid)) => form.append_pair("MessagingServiceSid", sid),
            (None, None) => return Err("no sender configured".into()),
        };
        form.append_pair("Body", &m.text);
        let mut headers = BTreeMap::new();
        headers.insert("authorization".to_string(), self.authorization.clone());
        headers.insert(
            "content-type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        );
        Ok(OutboundAnswer::Send(OutgoingRequest {
            method: "POST".into(),
            url: format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                s.api_base.trim_end_matches('/'),
                s.account_sid
            ),
            headers,
            body: serde_json::Value::String(form.finish()),
        }))
    }
}

export_plugin!(SmsAdapter);
