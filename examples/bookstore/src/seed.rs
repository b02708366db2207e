//! Demo data: 40 books in 5 categories with reviews (rows of their own), one book with a single
//! copy left (`BK-LAST`), 20 customers. Data only: [`App::seed`](crate::app::App::seed)
//! inserts what is missing (and each demo shop's price list).

use uuid::Uuid;

use crate::model::{Attributes, Customer, Inventory, Product, Review};

/// Categories of the demo catalog.
pub const CATEGORIES: [&str; 5] = ["children", "cooking", "fiction", "history", "science"];

/// The SKU with exactly one copy in stock.
pub const LAST_COPY: &str = "BK-LAST";

/// Stock of every other seeded book.
pub const STOCK: i64 = 1000;

/// Seeded customers.
pub const CUSTOMERS: usize = 20;

/// The email of seeded customer `i`.
pub fn customer_email(i: usize) -> String {
    format!("reader{i}@example.com")
}

/// The SKU of seeded book `i` (0..40).
pub fn sku(i: usize) -> String {
    format!("BK-{:04}", i + 1)
}

const ADJ: [&str; 8] = [
    "Silent", "Hidden", "Last", "Golden", "Quiet", "Lost", "Northern", "Bright",
];
const NOUN: [&str; 8] = [
    "River", "Garden", "Empire", "Kitchen", "Star", "Library", "Forest", "Harbor",
];

/// The seeded reviews of book `i` (fixed ids, so seeding twice adds none;
/// no customer id: they stand for reviews imported from elsewhere).
fn reviews_of(i: usize) -> Vec<Review> {
    (0..((i / 5 + i) % 5))
        .map(|j| Review {
            id: Uuid::from_u128(0x5eed_0000_0000_0000_0000_0000_0000 | (i * 100 + j) as u128),
            sku: sku(i),
            customer_id: None,
            user: format!("reader{}", (i + j) % CUSTOMERS),
            rating: ((i * 7 + j * 3) % 5 + 1) as i32,
            text: "Seeded review.".into(),
        })
        .collect()
}

/// The seeded reviews of every seeded book.
pub fn reviews() -> Vec<Review> {
    (0..40).flat_map(reviews_of).collect()
}

/// The seeded products (their rating and review count from [`reviews`]).
pub fn products() -> Vec<Product> {
    let mut out: Vec<Product> = (0..40)
        .map(|i| {
            let mut p = Product {
                sku: sku(i),
                title: format!("The {} {}", ADJ[i % 8], NOUN[(i / 8 + i) % 8]),
                author: format!("Author {}", i % 13 + 1),
                category: CATEGORIES[i % 5].into(),
                price_cents: 999 + (i as i64 * 137) % 3000,
                attributes: Attributes {
                    format: ["hardcover", "paperback", "ebook"][i % 3].into(),
                    pages: 120 + (i as i32 * 37) % 600,
                    language: if i % 4 == 0 { "de" } else { "en" }.into(),
                    year: 1990 + (i as i32 * 3) % 35,
                    tags: vec![CATEGORIES[i % 5].into(), format!("shelf-{}", i % 6)],
                },
                review_count: 0,
                rating: 0.0,
                version: 0,
            };
            p.rerate(&reviews_of(i));
            p
        })
        .collect();
    out.push(Product {
        sku: LAST_COPY.into(),
        title: "The Last Copy".into(),
        author: "A. Scarce".into(),
        category: "fiction".into(),
        price_cents: 4200,
        attributes: Attributes {
            format: "hardcover".into(),
            pages: 321,
            language: "en".into(),
            year: 2024,
            tags: vec!["rare".into()],
        },
        review_count: 0,
        rating: 0.0,
        version: 0,
    });
    out
}

/// The stock rows of `products` (one copy of [`LAST_COPY`], [`STOCK`] of the others).
pub fn inventory(products: &[Product]) -> Vec<Inventory> {
    products
        .iter()
        .map(|p| Inventory {
            sku: p.sku.clone(),
            stock: if p.sku == LAST_COPY { 1 } else { STOCK },
            version: 0,
        })
        .collect()
}

/// The seeded customers (fresh ids; seeding skips emails that exist).
pub fn customers() -> Vec<Customer> {
    (0..CUSTOMERS)
        .map(|i| Customer {
            id: Uuid::now_v7(),
            email: customer_email(i),
            name: format!("Reader {i}"),
            version: 0,
        })
        .collect()
}
