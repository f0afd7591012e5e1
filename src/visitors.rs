//! Web chat visitor identity: the server issues each new visitor a token,
//! and only that token identifies the visitor afterwards (CONTRACT.md "Web
//! chat channel"). A client-chosen visitor id is a label, never a
//! credential.
//!
//! A token is `hex(id) + hex(mac)`: `id` is 16 random bytes (the visitor's
//! customer id on the `webchat` channel is `hex(id)`), `mac` the first 16
//! bytes of HMAC-SHA256 over the tenant and `id`, keyed by a server secret
//! kept in the store (`secrets` table). So a token is checked without
//! storing anything per visitor, tokens survive restarts, a token of one
//! tenant is worthless in another, and knowing a visitor's customer id (as
//! agents and admins do) does not give its token.
//!
//! **Invariant:** tokens are never stored or logged; the journal holds only
//! the customer id. Replacing the secret (deleting the `webchat_visitor_key`
//! row and restarting) revokes every visitor token at once.

use crate::store::Store;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Name of the secret in the store.
const SECRET: &str = "webchat_visitor_key";
const ID_BYTES: usize = 16;
const MAC_BYTES: usize = 16;
/// Length of a token, in characters.
pub const TOKEN_CHARS: usize = 2 * (ID_BYTES + MAC_BYTES);

/// Issues and checks visitor tokens.
pub struct VisitorTokens {
    key: Vec<u8>,
}

impl std::fmt::Debug for VisitorTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VisitorTokens")
    }
}

/// Why the visitors' secret could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("the stored {SECRET} is too short")]
    TooShort,
}

/// A visitor the server knows: its customer id on the `webchat` channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visitor {
    pub customer: String,
}

impl VisitorTokens {
    /// Load the server secret from the store (created on first start).
    pub fn load(store: &dyn Store) -> Result<VisitorTokens, SecretError> {
        use rand::RngCore;
        let mut fresh = [0u8; 32];
        rand::rng().fill_bytes(&mut fresh);
        let key = store.secret(SECRET, &fresh)?;
        if key.len() < 32 {
            return Err(SecretError::TooShort);
        }
        Ok(VisitorTokens { key })
    }

    fn mac(&self, tenant: &str, id: &[u8]) -> [u8; MAC_BYTES] {
        // HMAC accepts keys of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(b"switchboard webchat visitor\0");
        mac.update(tenant.as_bytes());
        mac.update(b"\0");
        mac.update(id);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; MAC_BYTES];
        out.copy_from_slice(&full[..MAC_BYTES]);
        out
    }

    /// A new visitor of `tenant`: its token (give it to the client only)
    /// and who it is.
    pub fn issue(&self, tenant: &str) -> (String, Visitor) {
        use rand::RngCore;
        let mut id = [0u8; ID_BYTES];
        rand::rng().fill_bytes(&mut id);
        let token = format!("{}{}", hex::encode(id), hex::encode(self.mac(tenant, &id)));
        (
            token,
            Visitor {
                customer: hex::encode(id),
            },
        )
    }

    /// The visitor of `token` in `tenant`, if the server issued it.
    pub fn check(&self, tenant: &str, token: &str) -> Option<Visitor> {
        use subtle::ConstantTimeEq;
        if token.len() != TOKEN_CHARS {
            return None;
        }
        let raw = hex::decode(token).ok()?;
        let (id, mac) = raw.split_at(ID_BYTES);
        let expected = self.mac(tenant, id);
        if bool::from(expected.ct_eq(mac)) {
            Some(Visitor {
                customer: hex::encode(id),
            })
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> VisitorTokens {
        VisitorTokens { key: vec![7; 32] }
    }

    #[test]
    fn an_issued_token_names_its_visitor_in_its_tenant_only() {
        let t = tokens();
        let (token, v) = t.issue("demo");
        assert_eq!(token.len(), TOKEN_CHARS);
        assert_eq!(t.check("demo", &token), Some(v.clone()));
        assert_eq!(t.check("acme", &token), None, "bound to its tenant");
        // The customer id (known to agents) is not a token.
        assert_eq!(t.check("demo", &v.customer), None);
        let forged = format!("{}{}", v.customer, "0".repeat(2 * MAC_BYTES));
        assert_eq!(t.check("demo", &forged), None);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let t = tokens();
        for bad in [
            "",
            "x",
            &"z".repeat(TOKEN_CHARS),
            &"é".repeat(TOKEN_CHARS / 2),
        ] {
            assert_eq!(t.check("demo", bad), None, "{bad:?}");
        }
    }

    #[test]
    fn another_server_secret_refuses_the_token() {
        let (token, _) = tokens().issue("demo");
        let other = VisitorTokens { key: vec![8; 32] };
        assert_eq!(other.check("demo", &token), None);
    }
}
