//! Why a tenant or the server could not start. Each text is whole: the
//! cause is on the same line (or, for scripts, on the lines after it), so
//! one `Display` is what an operator needs, whoever prints it.

use crate::store::StoreError;
use crate::visitors::SecretError;
use switchboard_core::lua::ScriptError;
use switchboard_core::masking::MaskError;

/// A tenant could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("tenant {tenant}: {cause}")]
    MaskPatterns { tenant: String, cause: MaskError },
    /// Every problem of its scripts and plugins, one `tenant: file:line:
    /// message` line each.
    #[error("invalid scripts or plugins:\n{}", lines(.tenant, .problems))]
    Scripts {
        tenant: String,
        problems: Vec<ScriptError>,
    },
}

fn lines(tenant: &str, problems: &[ScriptError]) -> String {
    problems
        .iter()
        .map(|e| format!("{tenant}: {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The server could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("listening on {address}: {cause}")]
    Listen {
        address: String,
        cause: std::io::Error,
    },
    #[error("opening the store: {0}")]
    OpenStore(StoreError),
    #[error("opening the PostgreSQL store: {0}")]
    OpenPostgres(StoreError),
    #[error("loading the sessions: {0}")]
    Sessions(StoreError),
    #[error("recovering tenant {tenant}: {cause}")]
    Recover { tenant: String, cause: StoreError },
    #[error("reading the epoch of tenant {tenant}: {cause}")]
    Epoch { tenant: String, cause: StoreError },
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error("the visitors' secret: {0}")]
    Secret(SecretError),
    #[error("building the HTTP client that forwards to other nodes: {0}")]
    Forwarder(reqwest::Error),
    #[error("opening the store: {0}")]
    Opener(tokio::task::JoinError),
    #[error("serving HTTP: {0}")]
    Serve(std::io::Error),
}
