//! The HTTP API (JSON).
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/api/about` | which stores were chosen and why |
//! | GET | `/health` | per-database health |
//! | POST | `/api/login` | `{email, password}` → `{token, expires_at}` |
//! | POST | `/api/logout` | end the session (Bearer token) |
//! | GET | `/api/me` | the logged-in customer |
//! | GET | `/api/me/reviews` | the reviews they wrote (from `catalog`; the customer is in `main`) |
//! | GET | `/api/products?category=&limit=` | catalog list (cached, tagged) |
//! | GET | `/api/products/{sku}` | product (cached) with its reviews and stock |
//! | PUT | `/api/products/{sku}` | `{title?, price_cents?}`, invalidates the product and catalog queries |
//! | POST | `/api/products/{sku}/reviews` | `{rating, text}` (logged in) |
//! | GET | `/api/top-rated` | best product per category (aggregation) |
//! | POST | `/api/checkout` | `{items: [{sku, qty}]}` (logged in) → 201, 409 out of stock / conflict |
//! | GET | `/api/orders` | the customer's orders with their lines |
//! | GET | `/api/shops` | demo shops (tenants) |
//! | GET | `/api/shops/{shop}/items` | a shop's price list (501 on SQLite) |

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use persistence::{ErrorKind, HealthState};
use serde::Deserialize;
use serde_json::json;

use crate::app::{App, CartLine, CheckoutError, ProductPatch, ShopTenants};
use crate::sessions::LiveSession;

/// An error answer: status and a JSON `{error}` body.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<persistence::Error> for ApiError {
    fn from(e: persistence::Error) -> Self {
        let status = match e.kind() {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict(_) => StatusCode::CONFLICT,
            ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
            ErrorKind::Unsupported => StatusCode::NOT_IMPLEMENTED,
            ErrorKind::Unavailable | ErrorKind::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "request failed");
        }
        ApiError(status, e.to_string())
    }
}

type ApiResult<T> = std::result::Result<T, ApiError>;

fn not_found(what: &str) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("no {what}"))
}

async fn session(app: &App, headers: &HeaderMap) -> ApiResult<LiveSession> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "log in first".into()))?;
    app.session(token.trim()).await?.ok_or_else(|| {
        ApiError(
            StatusCode::UNAUTHORIZED,
            "session expired or unknown".into(),
        )
    })
}

/// The API routes over `app`.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/health", get(health))
        .route("/api/about", get(about))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/me/reviews", get(my_reviews))
        .route("/api/products", get(list_products))
        .route("/api/products/{sku}", get(product).put(update_product))
        .route("/api/products/{sku}/reviews", post(add_review))
        .route("/api/top-rated", get(top_rated))
        .route("/search", get(search_page))
        .route("/api/search", get(search))
        .route("/api/checkout", post(checkout))
        .route("/api/orders", get(orders))
        .route("/api/shops", get(shops))
        .route("/api/shops/{shop}/items", get(shop_items))
        .with_state(app)
}

async fn index() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "persistence bookstore\n\n  /dashboard      live monitoring page\n  /api/about      which stores were chosen\n  /api/products   the catalog\n  /search         the search box (text + similar books)\n  /metrics        Prometheus text\n",
    )
}

#[derive(serde::Deserialize)]
struct SearchParams {
    q: Option<String>,
}

/// `GET /api/search?q=`: matching and similar books, per-source status.
async fn search(
    State(app): State<Arc<App>>,
    Query(p): Query<SearchParams>,
) -> ApiResult<Json<crate::search::SearchView>> {
    Ok(Json(app.search(p.q.as_deref().unwrap_or("")).await?))
}

/// `GET /search?q=`: the search box, and its answer.
async fn search_page(State(app): State<Arc<App>>, Query(p): Query<SearchParams>) -> Response {
    let q = p.q.unwrap_or_default();
    let (view, error) = if q.trim().is_empty() {
        (None, None)
    } else {
        match app.search(&q).await {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e.to_string())),
        }
    };
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        crate::search::page(&q, view.as_ref(), error.as_deref()),
    )
        .into_response()
}

async fn about(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(json!({
        "choices": app.choices(),
        "topology": app.db.describe(),
        "demo_login": { "email": crate::seed::customer_email(0), "password": crate::app::DEMO_PASSWORD },
    }))
}

async fn health(State(app): State<Arc<App>>) -> Response {
    let report = app.db.health().await;
    let name = |s: HealthState| format!("{s:?}").to_lowercase();
    let body = json!({
        "status": name(report.status),
        "databases": report.databases.iter().map(|d| json!({
            "name": d.name, "kind": d.kind, "state": name(d.state),
            "latency_ms": d.latency.map(|l| l.as_secs_f64() * 1e3), "error": d.error,
        })).collect::<Vec<_>>(),
    });
    let status = if report.status == HealthState::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(body)).into_response()
}

#[derive(Deserialize)]
struct LoginBody {
    email: String,
    password: String,
}

async fn login(
    State(app): State<Arc<App>>,
    Json(body): Json<LoginBody>,
) -> ApiResult<Json<serde_json::Value>> {
    match app.login(&body.email, &body.password).await? {
        Some(s) => Ok(Json(json!({
            "token": s.token, "expires_at": s.expires_at, "name": s.data.name,
        }))),
        None => Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "unknown email or wrong password".into(),
        )),
    }
}

async fn logout(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult<StatusCode> {
    let s = session(&app, &headers).await?;
    app.logout(&s.token).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult<Json<serde_json::Value>> {
    let s = session(&app, &headers).await?;
    let c = app
        .customer(s.data.customer_id)
        .await?
        .ok_or_else(|| not_found("customer"))?;
    Ok(Json(json!({
        "id": c.id, "email": c.email, "name": c.name, "session_expires_at": s.expires_at,
    })))
}

#[derive(Deserialize)]
struct ListParams {
    category: Option<String>,
    limit: Option<u64>,
}

async fn list_products(
    State(app): State<Arc<App>>,
    Query(p): Query<ListParams>,
) -> ApiResult<Json<serde_json::Value>> {
    let items = app
        .list_products(p.category.as_deref(), p.limit.unwrap_or(50))
        .await?;
    Ok(Json(json!({ "items": items })))
}

async fn product(
    State(app): State<Arc<App>>,
    Path(sku): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let p = app
        .product(&sku)
        .await?
        .ok_or_else(|| not_found("product"))?;
    Ok(Json(serde_json::to_value(p).map_err(|e| {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    })?))
}

async fn update_product(
    State(app): State<Arc<App>>,
    Path(sku): Path<String>,
    Json(patch): Json<ProductPatch>,
) -> ApiResult<Json<serde_json::Value>> {
    let p = app
        .update_product(&sku, &patch)
        .await?
        .ok_or_else(|| not_found("product"))?;
    Ok(Json(json!(p)))
}

#[derive(Deserialize)]
struct ReviewBody {
    rating: i32,
    text: String,
}

async fn add_review(
    State(app): State<Arc<App>>,
    Path(sku): Path<String>,
    headers: HeaderMap,
    Json(body): Json<ReviewBody>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let s = session(&app, &headers).await?;
    let p = app
        .add_review(
            &sku,
            s.data.customer_id,
            &s.data.name,
            body.rating,
            &body.text,
        )
        .await?
        .ok_or_else(|| not_found("product"))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "sku": p.sku, "rating": p.rating, "reviews": p.review_count })),
    ))
}

async fn my_reviews(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> ApiResult<Json<serde_json::Value>> {
    let s = session(&app, &headers).await?;
    let r = app
        .reviews_by(s.data.customer_id)
        .await?
        .ok_or_else(|| not_found("customer"))?;
    Ok(Json(json!({ "reviews": r.reviews })))
}

async fn top_rated(State(app): State<Arc<App>>) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(json!(app.top_rated().await?)))
}

#[derive(Deserialize)]
struct CheckoutBody {
    items: Vec<CartLine>,
}

async fn checkout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Json(body): Json<CheckoutBody>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let s = session(&app, &headers).await?;
    match app.checkout(s.data.customer_id, &body.items).await {
        Ok(order) => Ok((StatusCode::CREATED, Json(json!(order)))),
        Err(CheckoutError::OutOfStock(sku)) => Err(ApiError(
            StatusCode::CONFLICT,
            format!("out of stock: {sku}"),
        )),
        Err(CheckoutError::UnknownProduct(sku)) => {
            Err(ApiError(StatusCode::NOT_FOUND, format!("no product {sku}")))
        }
        Err(CheckoutError::Invalid(why)) => Err(ApiError(StatusCode::BAD_REQUEST, why)),
        Err(CheckoutError::Store(e)) if matches!(e.kind(), ErrorKind::Conflict(_)) => {
            Err(ApiError(
                StatusCode::CONFLICT,
                "a concurrent checkout conflicted with this one; try again".into(),
            ))
        }
        Err(CheckoutError::Store(e)) => Err(e.into()),
    }
}

async fn orders(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> ApiResult<Json<serde_json::Value>> {
    let s = session(&app, &headers).await?;
    Ok(Json(
        json!({ "orders": app.orders_of(s.data.customer_id).await? }),
    ))
}

async fn shops(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(match app.shops() {
        ShopTenants::Schemas { shops, .. } => json!({
            "mode": "schema per tenant (PostgreSQL)",
            "shops": shops.iter().map(|(name, id)| json!({"name": name, "schema": id.as_str()})).collect::<Vec<_>>(),
        }),
        ShopTenants::Unavailable(why) => {
            json!({ "mode": "unavailable", "reason": why, "shops": [] })
        }
    })
}

async fn shop_items(
    State(app): State<Arc<App>>,
    Path(shop): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(
        json!({ "shop": shop, "items": app.shop_items(&shop).await? }),
    ))
}
