//! The bookstore's entities: customers, stock and orders in the relational
//! database (`main`), the product catalog in the document database
//! (`catalog`), and each demo shop's own price list in its tenant schema.

use chrono::{DateTime, Utc};
use persistence::Entity;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A customer (relational).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "bs_customers")]
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

/// One line of an order (stored inside the order as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderLine {
    /// Product.
    pub sku: String,
    /// Units.
    pub qty: i64,
    /// Unit price at checkout, cents.
    pub price_cents: i64,
}

/// An order (relational), written in the checkout transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "bs_orders")]
pub struct Order {
    /// Id.
    #[entity(id)]
    pub id: Uuid,
    /// Who ordered.
    #[entity(index)]
    pub customer_id: Uuid,
    /// What.
    pub lines: Vec<OrderLine>,
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

/// A review (nested in the product).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    /// Reviewer's display name.
    pub user: String,
    /// 1..=5.
    pub rating: i32,
    /// Text.
    pub text: String,
}

/// A catalog product (document).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "bs_products")]
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
    /// Reviews, newest last.
    pub reviews: Vec<Review>,
    /// Mean rating of `reviews` (0 without reviews), kept in step with them.
    #[entity(index)]
    pub rating: f64,
    /// Optimistic-locking version.
    #[entity(version)]
    pub version: i64,
}

impl Product {
    /// Recompute `rating` from `reviews`.
    pub fn rerate(&mut self) {
        self.rating = if self.reviews.is_empty() {
            0.0
        } else {
            let sum: i64 = self.reviews.iter().map(|r| i64::from(r.rating)).sum();
            (sum as f64 / self.reviews.len() as f64 * 100.0).round() / 100.0
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
