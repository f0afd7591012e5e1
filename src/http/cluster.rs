//! Operations of a node: readiness and the cluster's view
//! (`crate::cluster`).

use super::admin::Admin;
use super::{AppError, Shared};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/readyz", get(readyz))
        .route("/admin/cluster", get(cluster))
}

/// 200 only when this node is a member of the cluster that has recovered
/// every tenant placed on it (a server alone: once built); 503 while it
/// joins, takes its tenants, or drains.
async fn readyz(State(state): State<Shared>) -> Response {
    if state.node.ready() {
        (
            StatusCode::OK,
            Json(json!({"ready": true, "node": state.node.id})),
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "not ready: joining the cluster, taking its tenants over, or draining", "node": state.node.id})),
        )
            .into_response()
    }
}

/// `{nodes: [{id, url, heartbeat_at, tenants}], tenants: [{id, owner,
/// epoch, since}]}`: the live nodes and who owns each tenant, as the
/// shared store says (a server alone: itself and its tenants).
async fn cluster(
    _: Admin,
    State(state): State<Shared>,
) -> Result<Json<serde_json::Value>, AppError> {
    crate::cluster::view(&state).await.map(Json).map_err(|e| {
        tracing::error!(error = %e, "reading the cluster's membership");
        AppError::Unavailable
    })
}
