//! The bookstore's entities: customers, stock, orders and their lines in
//! the relational database (`main`), the product catalog and its reviews
//! in the document database (`catalog`), and each demo shop's own price
//! list in its tenant schema.
//!
//! Relations (issue #16): an order belongs to its customer and has many
//! lines (rows, removed with the order); a review belongs to its product
//! (same store, removed with it) and, across stores, to the customer who
//! wrote it (`catalog` → `main`: not enforced by either server, see the
//! README's "Relations across stores").

use chrono::{DateTime, Utc};
use persistence::Entity;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A customer (relational). `Customer::REVIEWS` loads the reviews they
/// wrote from the catalog (another store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "bs_customers", has_many(Review, key = customer_id))]
pub struct Customer {
    /// Id.
    #[entity(id)]
    pub id: Uuid,
    /// Login name.
    #[entity(unique)]
    pub email: String,
    /// Display name.
    pub name: String,
    /// Optimistic-locking version.
    #[entity(version)]
    pub version: i64,
}

/// Stock of one product (relational), taken by checkouts with a guarded
/// atomic decrement (see `App::checkout`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "bs_inventory")]
pub struct Inventory {
    /// The product's SKU.
    #[entity(id)]
    pub sku: String,
    /// Units on hand.
    pub stock: i64,
    /// Version: every change (a checkout's decrement too) adds 1.
    #[entity(version)]
    pub version: i64,
}

/// One line of an order (relational, a row of its own; removed with its order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(
    name = "bs_order_lines",
    belongs_to(Order, key = order_id, on_delete = cascade)
)]
pub struct OrderLine {
    /// Id.
    #[entity(id)]
    pub id: Uuid,
    /// The order.
    pub order_id: Uuid,
    /// Product.
    pub sku: String,
    /// Units.
    pub qty: i64,
    /// Unit price at checkout, cents.
    pub price_cents: i64,
}

/// An order (relational), written in the checkout transaction with its
/// lines. `Order::LINES` loads them, `Order::CUSTOMER` the customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(
    name = "bs_orders",
    belongs_to(Customer, key = customer_id, on_delete = restrict),
    has_many(OrderLine, key = order_id, name = "lines")
)]
pub struct Order {
    /// Id.
    #[entity(id)]
    pub id: Uuid,
    /// Who ordered.
    pub customer_id: Uuid,
    /// Sum of the lines, cents.
    pub total_cents: i64,
    /// When.
    #[entity(index)]
    pub created_at: DateTime<Utc>,
}

/// Nested product attributes (a sub-document in MongoDB).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attributes {
    /// `hardcover`, `paperback`, `ebook`.
    pub format: String,
    /// Pages.
    pub pages: i32,
    /// Language code.
    pub language: String,
    /// Year published.
    pub year: i32,
    /// Free-form tags.
    pub tags: Vec<String>,
}

/// A review of a product (document, in `catalog` beside the product;
/// removed with it). Its customer lives in `main`: a cross-store relation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(
    name = "bs_reviews",
    belongs_to(Product, key = sku, on_delete = cascade),
    belongs_to(Customer, key = customer_id)
)]
pub struct Review {
    /// Id.
    #[entity(id)]
    pub id: Uuid,
    /// The product.
    pub sku: String,
    /// Who wrote it (none for the seeded demo reviews).
    pub customer_id: Option<Uuid>,
    /// Reviewer's display name.
    pub user: String,
    /// 1..=5.
    pub rating: i32,
    /// Text.
    pub text: String,
}

/// A catalog product (document). `Product::REVIEWS` loads its reviews.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "bs_products", has_many(Review, key = sku))]
pub struct Product {
    /// SKU.
    #[entity(id)]
    pub sku: String,
    /// Title.
    pub title: String,
    /// Author.
    pub author: String,
    /// Category.
    #[entity(index)]
    pub category: String,
    /// Price, cents.
    pub price_cents: i64,
    /// Nested attributes.
    pub attributes: Attributes,
    /// How many reviews it has, kept in step with them.
    pub review_count: i64,
    /// Mean rating of its reviews (0 without reviews), kept in step with them.
    #[entity(index)]
    pub rating: f64,
    /// Optimistic-locking version.
    #[entity(version)]
    pub version: i64,
}

impl Product {
    /// Recompute `rating` and `review_count` from all of its `reviews`.
    pub fn rerate(&mut self, reviews: &[Review]) {
        self.review_count = reviews.len() as i64;
        self.rating = if reviews.is_empty() {
            0.0
        } else {
            let sum: i64 = reviews.iter().map(|r| i64::from(r.rating)).sum();
            (sum as f64 / reviews.len() as f64 * 100.0).round() / 100.0
        };
    }
}

/// A demo shop's own price for a product (relational, in the shop's tenant schema).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "bs_shop_items")]
pub struct ShopItem {
    /// SKU.
    #[entity(id)]
    pub sku: String,
    /// The shop's price, cents.
    pub price_cents: i64,
    /// Shown on the shop's front page.
    pub featured: bool,
}

/// The best-rated product of a category (aggregation output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopRated {
    /// Category.
    pub category: String,
    /// Product SKU.
    pub sku: String,
    /// Title.
    pub title: String,
    /// Mean rating.
    pub rating: f64,
    /// Number of reviews.
    pub reviews: i64,
}

/// Dimensions of a book's embedding.
pub const EMBEDDING_DIM: usize = 64;

/// A book's embedding (relational, `main`): a hashed bag of words of its
/// title, author, category and tags, computed locally
/// ([`crate::search::embed`]), for "similar books".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "bs_book_vectors")]
pub struct BookVector {
    /// The product's SKU.
    #[entity(id)]
    pub sku: String,
    /// Unit-length embedding.
    #[entity(vector(dim = 64, metric = cosine))]
    pub embedding: Vec<f32>,
}
