//! Signatures of channel webhooks checked by the host, before any adapter
//! sees the request: a plugin or script can never weaken them.
//!
//! - Messenger: `X-Hub-Signature-256` (HMAC-SHA256 of the raw body; see
//!   `core::lua::sb::verify_sha256_signature`).
//! - Twilio (`scheme = "twilio"`): `X-Twilio-Signature`, the base64
//!   HMAC-SHA1, keyed by the account's auth token, of the public URL Twilio
//!   called followed by every POST form parameter, sorted by name, as
//!   name then value with no separator (Twilio's "Webhooks security").
//!
//! Written by hand because it is a few lines over `hmac`/`sha1`; the Twilio
//! SDKs are not Rust.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// How a channel plugin's webhooks are authenticated (`[tenants.plugins.signature]`).
#[derive(Debug, Clone, Deserialize)]
pub struct SignatureCheck {
    /// Only `twilio` for now.
    pub scheme: SignatureScheme,
    /// The key (Twilio: the account's auth token).
    pub secret: String,
    /// The public URL the channel calls, exactly as configured there (a
    /// proxy in front changes what the server sees, so it is not derived
    /// from the request).
    pub url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureScheme {
    Twilio,
}

impl SignatureCheck {
    /// Whether the request carries a valid signature.
    pub fn verify(&self, headers: &axum::http::HeaderMap, body: &[u8]) -> bool {
        match self.scheme {
            SignatureScheme::Twilio => {
                let given = headers
                    .get("x-twilio-signature")
                    .and_then(|v| v.to_str().ok());
                match given {
                    Some(sig) => twilio_signature_valid(&self.secret, &self.url, body, sig),
                    None => false,
                }
            }
        }
    }
}

/// Twilio's signature of `url` plus the form parameters of `body`.
pub fn twilio_signature(auth_token: &str, url: &str, form_body: &[u8]) -> Option<String> {
    let mut params: Vec<(String, String)> = if form_body.is_empty() {
        Vec::new()
    } else {
        serde_urlencoded::from_bytes(form_body).ok()?
    };
    // Sorted by name; for a repeated name, by value (what Twilio's own
    // validators do).
    params.sort();
    let mut data = url.to_string();
    for (k, v) in &params {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()).ok()?;
    mac.update(data.as_bytes());
    Some(base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// Constant-time check of an `X-Twilio-Signature` value.
pub fn twilio_signature_valid(auth_token: &str, url: &str, form_body: &[u8], given: &str) -> bool {
    match twilio_signature(auth_token, url, form_body) {
        Some(expected) => {
            expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of Twilio's documentation.
    #[test]
    fn twilio_documented_example() {
        let body = "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212";
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            twilio_signature("12345", url, body.as_bytes()).as_deref(),
            Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=")
        );
        assert!(twilio_signature_valid(
            "12345",
            url,
            body.as_bytes(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!twilio_signature_valid(
            "12346",
            url,
            body.as_bytes(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        let tampered = body.replace("1234&From", "9999&From");
        assert!(!twilio_signature_valid(
            "12345",
            url,
            tampered.as_bytes(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn malformed_bodies_and_signatures_are_refused() {
        assert!(!twilio_signature_valid("t", "https://x/", b"%zz=%", "AAAA"));
        assert!(!twilio_signature_valid("t", "https://x/", b"a=b", ""));
    }
}
