//! The application: wiring (which stores, why), the use cases, and cleanup.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use persistence::cache::CacheLayer;
use persistence::config::{CachePolicy, DatabaseConfig, DatabaseKind, PersistenceConfig, Secret};
use persistence::layer::{LayerExt, Metrics, metric_names};
use persistence::mongo::{MongoStore, Pipeline};
use persistence::postgres::{RelationalStore, TenantId, Tenants};
use persistence::search::Searchable;
use persistence::{
    ConflictKind, Error, ErrorKind, Filter, Guard, LoadExt, Persistence, Query, Repository, Result,
    SharedRepository, Update,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{
    BookVector, Customer, Inventory, Order, OrderLine, Product, Review, ShopItem, TopRated,
};
use crate::seed;
use crate::sessions::{LiveSession, SessionData, Sessions};

/// The demo shops (tenants): display name → tenant-id suffix.
pub const SHOPS: [&str; 2] = ["north", "south"];

/// Password of every seeded demo customer. A real application keeps
/// password hashes (argon2) in its customer table; this demo does not.
pub const DEMO_PASSWORD: &str = "bookstore";

/// Operations slower than this are logged and listed on the dashboard.
pub const SLOW_THRESHOLD: Duration = Duration::from_millis(25);

/// How the application is started.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// PostgreSQL (or `sqlite:` URL); none: in-memory SQLite.
    pub database_url: Option<String>,
    /// MongoDB; none: the in-memory document store.
    pub mongodb_url: Option<String>,
    /// Redis (cache L2 and sessions); none: in-process cache and sessions.
    pub redis_url: Option<String>,
    /// PostgreSQL schema, MongoDB database and Redis key prefix of this
    /// instance (`[a-z][a-z0-9_]*`, also the tenant-id prefix).
    pub namespace: String,
    /// Session lifetime.
    pub session_ttl: Duration,
    /// Seed demo data at start (idempotent).
    pub seed: bool,
}

impl AppConfig {
    /// From `DATABASE_URL`, `MONGODB_URL`, `REDIS_URL` (empty = unset) and
    /// `BOOKSTORE_NAMESPACE` (default `bookstore`). Local servers are not
    /// probed: no URL means the embedded default.
    pub fn from_env() -> AppConfig {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
        AppConfig {
            database_url: var("DATABASE_URL"),
            mongodb_url: var("MONGODB_URL"),
            redis_url: var("REDIS_URL"),
            namespace: var("BOOKSTORE_NAMESPACE").unwrap_or_else(|| "bookstore".into()),
            session_ttl: Duration::from_secs(30 * 60),
            seed: true,
        }
    }

    /// Embedded defaults only (SQLite, memory, moka), whatever the environment says.
    pub fn embedded(namespace: &str) -> AppConfig {
        AppConfig {
            database_url: None,
            mongodb_url: None,
            redis_url: None,
            namespace: namespace.to_string(),
            session_ttl: Duration::from_secs(30 * 60),
            seed: true,
        }
    }

    /// The `persistence` configuration: databases `main`, `catalog`, and
    /// `cache` when Redis is set; inventory, orders and order lines are not
    /// cached (they are written inside checkout transactions, beside the cache).
    pub fn persistence_config(&self) -> Result<PersistenceConfig> {
        crate::validate_namespace(&self.namespace)?;
        let db = |kind, url: Option<&String>| DatabaseConfig {
            timeout: Some(Duration::from_secs(10)),
            ..DatabaseConfig::new(kind, url.map(|u| Secret::new(u.clone())))
        };
        let mut c = PersistenceConfig::default();
        let main = match &self.database_url {
            Some(url) if url.starts_with("sqlite:") => db(DatabaseKind::Sqlite, Some(url)),
            Some(url) => {
                let mut d = db(DatabaseKind::Postgres, Some(url));
                d.schema = Some(self.namespace.clone());
                d.pool.max_connections = Some(16);
                d
            }
            None => db(DatabaseKind::Sqlite, Some(&"sqlite::memory:".to_string())),
        };
        c.databases.insert("main".into(), main);
        let catalog = match &self.mongodb_url {
            Some(url) => {
                let mut d = db(DatabaseKind::Mongo, Some(url));
                d.database = Some(self.namespace.clone());
                d
            }
            None => db(DatabaseKind::Memory, None),
        };
        c.databases.insert("catalog".into(), catalog);
        if let Some(url) = &self.redis_url {
            c.databases
                .insert("cache".into(), db(DatabaseKind::Redis, Some(url)));
            c.cache.default.l2 = Some("cache".into());
        }
        // Low on purpose: the dashboard's slow-operation list has something to show under load.
        c.metrics.slow_threshold = SLOW_THRESHOLD;
        c.cache.default.ttl = Some(Duration::from_secs(300));
        c.cache.default.negative_ttl = Some(Duration::from_secs(30));
        for uncached in ["bs_inventory", "bs_orders", "bs_order_lines"] {
            c.cache.entities.insert(
                uncached.into(),
                CachePolicy {
                    disabled: true,
                    ..CachePolicy::default()
                },
            );
        }
        Ok(c)
    }
}

/// Where the demo shops live.
pub enum ShopTenants {
    /// Schema per shop on PostgreSQL.
    Schemas {
        /// Tenant management.
        tenants: Tenants,
        /// Shop name → tenant.
        shops: BTreeMap<String, TenantId>,
    },
    /// Not available (SQLite has no schemas); the reason.
    Unavailable(String),
}

/// The running application's state. Cheap to share (`Arc<App>`).
pub struct App {
    /// The persistence manager.
    pub db: Arc<Persistence>,
    /// Config.
    pub config: AppConfig,
    customers: SharedRepository<Customer>,
    inventory: SharedRepository<Inventory>,
    orders: SharedRepository<Order>,
    products: SharedRepository<Product>,
    reviews: SharedRepository<Review>,
    vectors: SharedRepository<BookVector>,
    main: RelationalStore,
    catalog: Option<MongoStore>,
    /// Tagged catalog queries (lists, top-rated).
    queries: CacheLayer,
    sessions: Sessions,
    shops: ShopTenants,
    choices: Vec<String>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("choices", &self.choices)
            .finish()
    }
}

/// Why a checkout failed.
#[derive(Debug)]
pub enum CheckoutError {
    /// Not enough stock of this SKU.
    OutOfStock(String),
    /// No such product.
    UnknownProduct(String),
    /// Bad request.
    Invalid(String),
    /// Storage error.
    Store(Error),
}

impl From<Error> for CheckoutError {
    fn from(e: Error) -> Self {
        CheckoutError::Store(e)
    }
}

/// A requested line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CartLine {
    /// Product.
    pub sku: String,
    /// Units (1..=100).
    pub qty: i64,
}

/// A product with its reviews and stock.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProductView {
    /// The catalog document.
    #[serde(flatten)]
    pub product: Product,
    /// Its reviews (`Product::REVIEWS`, one batched query), in id order.
    pub reviews: Vec<Review>,
    /// Units on hand (relational).
    pub stock: Option<i64>,
}

/// An order with its lines (`Order::LINES`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderView {
    /// The order row.
    #[serde(flatten)]
    pub order: Order,
    /// Its lines, in id order.
    pub lines: Vec<OrderLine>,
}

/// What a customer wrote: their reviews, loaded from the catalog (another
/// store) through the cross-store relation `Customer::REVIEWS`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustomerReviews {
    /// The customer.
    pub customer: Customer,
    /// Their reviews, in id order.
    pub reviews: Vec<Review>,
}

/// Top-rated products and how they were computed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopRatedView {
    /// Best product per category, by category.
    pub categories: Vec<TopRated>,
    /// `mongodb aggregation pipeline` or `in the application (memory store)`.
    pub computed_by: String,
}

/// A change to a product.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProductPatch {
    /// New title.
    pub title: Option<String>,
    /// New price, cents.
    pub price_cents: Option<i64>,
}

#[derive(Deserialize)]
struct TopRatedRow {
    #[serde(rename = "_id")]
    category: String,
    sku: String,
    title: String,
    rating: f64,
    reviews: i64,
}

fn price_in_shop(base: i64, shop: usize) -> i64 {
    // North sells at list price, South 10 % off.
    if shop == 0 { base } else { base * 9 / 10 }
}

impl App {
    /// Build every store, provision tenants, seed (when configured).
    pub async fn start(config: AppConfig) -> Result<Arc<App>> {
        let db = Arc::new(Persistence::new(config.persistence_config()?)?);
        let mut choices = Vec::new();
        // The catalog's entities live in `catalog`; the rest in `main`. The
        // relations follow: a review's customer is in another store.
        db.place::<Product>("catalog").await?;
        db.place::<Review>("catalog").await?;
        let customers = db.repo::<Customer>().await?;
        let inventory = db.repo::<Inventory>().await?;
        let orders = db.repo::<Order>().await?;
        // Ensures the lines' table (written in the checkout transaction).
        db.repo::<OrderLine>().await?;
        let products = db.repo::<Product>().await?;
        let reviews = db.repo::<Review>().await?;
        let vectors = db.repo::<BookVector>().await?;
        // The search box: catalog text and similar books, asked at once.
        db.register_search(
            Searchable::<Product>::new("catalog")
                .name(crate::search::TEXT_SOURCE)
                .text(&["title", "author", "category"]),
        )
        .await?;
        db.register_search(
            Searchable::<BookVector>::new("main")
                .name(crate::search::SIMILAR_SOURCE)
                .vector(BookVector::EMBEDDING),
        )
        .await?;
        let main = db
            .relational("main")
            .await?
            .ok_or_else(|| Error::config("database `main` must be relational"))?;
        let catalog = db.mongo("catalog").await?;
        choices.push(match &config.database_url {
            Some(_) if main.dialect() == persistence::postgres::Dialect::Postgres => format!(
                "main: PostgreSQL from DATABASE_URL, schema `{}` (customers, stock, orders and their lines)",
                config.namespace
            ),
            Some(_) => "main: SQLite from DATABASE_URL (customers, stock, orders and their lines)".into(),
            None => {
                "main: embedded in-memory SQLite, no DATABASE_URL (customers, stock, orders and their lines)".into()
            }
        });
        choices.push(match &catalog {
            Some(_) => format!(
                "catalog: MongoDB from MONGODB_URL, database `{}` (products, reviews; top-rated by aggregation pipeline; a review's customer is in `main`)",
                config.namespace
            ),
            None => "catalog: embedded memory document store, no MONGODB_URL (products, reviews; top-rated computed in the application; a review's customer is in `main`)".into(),
        });

        let mut queries = CacheLayer::builder()
            .prefix(format!("bookstore.{}.queries", config.namespace))
            .db_label("catalog")
            .ttl(Duration::from_secs(60));
        if let Some(url) = &config.redis_url {
            queries = queries.redis_url(url.clone());
        }
        let queries = queries.build()?;
        let sessions = Sessions::new(config.redis_url.as_ref().map(|_| &queries))?;
        choices.push(match &config.redis_url {
            Some(_) => "cache: moka L1 + Redis L2 from REDIS_URL; product and query entries invalidated by tag on product change".into(),
            None => "cache: moka L1 in process, no REDIS_URL; product and query entries invalidated by tag on product change".into(),
        });
        choices.push(format!("sessions: {}", sessions.describe()));

        let shops = match Tenants::new(&main) {
            Ok(t) => {
                let tenants = t.register::<ShopItem>();
                let mut shops = BTreeMap::new();
                for shop in SHOPS {
                    let id = TenantId::new(format!("{}_{shop}", config.namespace))?;
                    tenants.provision(&id).await?;
                    shops.insert(shop.to_string(), id);
                }
                // The tenant registry knows the count; the dashboard reads it from this gauge.
                metrics::gauge!(metric_names::TENANTS, metric_names::LABEL_DB => "main")
                    .set(tenants.list().await?.len() as f64);
                choices.push(format!(
                    "shops: schema per tenant on PostgreSQL ({})",
                    shops
                        .values()
                        .map(TenantId::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                ShopTenants::Schemas { tenants, shops }
            }
            Err(e) => {
                let why = format!(
                    "{}: on SQLite the demo shops are not provisioned and /api/shops/* answers 501",
                    e.message()
                );
                choices.push(format!("shops: {why}"));
                ShopTenants::Unavailable(why)
            }
        };

        let app = Arc::new(App {
            db,
            config,
            customers,
            inventory,
            orders,
            products,
            reviews,
            vectors,
            main,
            catalog,
            queries,
            sessions,
            shops,
            choices,
        });
        if app.config.seed {
            app.seed().await?;
        }
        Ok(app)
    }

    /// What was chosen and why (no secrets).
    pub fn choices(&self) -> &[String] {
        &self.choices
    }

    /// Customers repository (cached by id).
    pub fn customers(&self) -> &SharedRepository<Customer> {
        &self.customers
    }
    /// Inventory repository (not cached).
    pub fn inventory(&self) -> &SharedRepository<Inventory> {
        &self.inventory
    }
    /// Products repository (cached).
    pub fn products(&self) -> &SharedRepository<Product> {
        &self.products
    }
    /// The demo shops.
    pub fn shops(&self) -> &ShopTenants {
        &self.shops
    }

    // ---- sessions ----

    /// Log in with a seeded email and the demo password.
    pub async fn login(&self, email: &str, password: &str) -> Result<Option<LiveSession>> {
        if password != DEMO_PASSWORD {
            return Ok(None);
        }
        let found = self
            .customers
            .find_one(&Query::filter(Customer::EMAIL.eq(email.to_string())))
            .await?;
        let Some(c) = found else { return Ok(None) };
        self.sessions
            .create(
                SessionData {
                    customer_id: c.id,
                    name: c.name,
                },
                self.config.session_ttl,
            )
            .await
            .map(Some)
    }

    /// The session of a token.
    pub async fn session(&self, token: &str) -> Result<Option<LiveSession>> {
        self.sessions.get(token).await
    }

    /// Log out.
    pub async fn logout(&self, token: &str) -> Result<bool> {
        self.sessions.destroy(token).await
    }

    /// A customer by id (cached).
    pub async fn customer(&self, id: Uuid) -> Result<Option<Customer>> {
        self.customers.get(&id).await
    }

    // ---- catalog ----

    /// A product with its reviews (one query each, through the cache) and
    /// its stock.
    pub async fn product(&self, sku: &str) -> Result<Option<ProductView>> {
        let q = Query::filter(Product::SKU.eq(sku.to_string())).limit(1);
        let Some(found) = self
            .products
            .find_with(&q, Product::REVIEWS, &*self.db)
            .await?
            .pop()
        else {
            return Ok(None);
        };
        let stock = self.inventory.get(&sku.to_string()).await?.map(|i| i.stock);
        Ok(Some(ProductView {
            product: found.entity,
            reviews: found.related,
            stock,
        }))
    }

    /// The reviews `customer` wrote, with the customer: `main` and
    /// `catalog` each answer one query (a cross-store relation).
    pub async fn reviews_by(&self, customer: Uuid) -> Result<Option<CustomerReviews>> {
        let q = Query::filter(Customer::ID.eq(customer)).limit(1);
        Ok(self
            .customers
            .find_with(&q, Customer::REVIEWS, &*self.db)
            .await?
            .pop()
            .map(|w| CustomerReviews {
                customer: w.entity,
                reviews: w.related,
            }))
    }

    /// Products of a category (or all), by title; cached, tagged `products`.
    pub async fn list_products(&self, category: Option<&str>, limit: u64) -> Result<Vec<Product>> {
        let limit = limit.clamp(1, 200);
        let key = format!("list:{}:{limit}", category.unwrap_or("*"));
        let repo = self.products.clone();
        let category = category.map(str::to_string);
        self.queries
            .get_or_load_tagged(&key, &["products"], move || async move {
                let filter = match category {
                    Some(c) => Product::CATEGORY.eq(c),
                    None => Filter::all(),
                };
                repo.find(
                    &Query::filter(filter)
                        .sort(Product::TITLE.asc())
                        .limit(limit),
                )
                .await
            })
            .await
    }

    /// The best-rated product of every category; cached, tagged `products`.
    pub async fn top_rated(&self) -> Result<TopRatedView> {
        let mongo = self.catalog.clone();
        let repo = self.products.clone();
        self.queries
            .get_or_load_tagged("top-rated", &["products"], move || async move {
                match mongo {
                    Some(store) => top_rated_mongo(&store).await,
                    None => top_rated_in_app(&repo).await,
                }
            })
            .await
    }

    /// Change a product; its cached entry and every cached catalog query go.
    pub async fn update_product(&self, sku: &str, patch: &ProductPatch) -> Result<Option<Product>> {
        if patch
            .price_cents
            .is_some_and(|p| !(1..=100_000_000).contains(&p))
        {
            return Err(Error::invalid_input("price_cents must be 1..=100000000"));
        }
        if patch
            .title
            .as_ref()
            .is_some_and(|t| t.trim().is_empty() || t.len() > 200)
        {
            return Err(Error::invalid_input("title must be 1..=200 characters"));
        }
        let sku = sku.to_string();
        let updated = self
            .with_product(&sku, |p| {
                if let Some(t) = &patch.title {
                    p.title = t.clone();
                }
                if let Some(c) = patch.price_cents {
                    p.price_cents = c;
                }
            })
            .await?;
        // A new title is new words: the book's embedding follows.
        if let (Some(_), Some(p)) = (&patch.title, &updated) {
            if let Some(v) = crate::search::book_vector(p) {
                self.vectors.upsert(&v).await?;
            }
        }
        Ok(updated)
    }

    /// Add a review by customer `customer_id`, shown as `user` (a row in
    /// `catalog` beside the product; the customer is in `main`), then
    /// recompute the product's rating and review count from all of its reviews.
    pub async fn add_review(
        &self,
        sku: &str,
        customer_id: Uuid,
        user: &str,
        rating: i32,
        text: &str,
    ) -> Result<Option<Product>> {
        if !(1..=5).contains(&rating) {
            return Err(Error::invalid_input("rating must be 1..=5"));
        }
        if text.len() > 2000 {
            return Err(Error::invalid_input("review text is limited to 2000 bytes"));
        }
        if self.products.get(&sku.to_string()).await?.is_none() {
            return Ok(None);
        }
        self.reviews
            .insert(&Review {
                id: Uuid::now_v7(),
                sku: sku.to_string(),
                customer_id: Some(customer_id),
                user: user.to_string(),
                rating,
                text: text.to_string(),
            })
            .await?;
        let all = self
            .reviews
            .find(&Query::filter(Review::SKU.eq(sku.to_string())))
            .await?;
        self.with_product(sku, move |p| p.rerate(&all)).await
    }

    /// Read-modify-write of a product under its version, retried on conflict,
    /// then the `products` tag is invalidated.
    async fn with_product(
        &self,
        sku: &str,
        change: impl Fn(&mut Product),
    ) -> Result<Option<Product>> {
        let sku = sku.to_string();
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            let Some(mut p) = self.products.get(&sku).await? else {
                return Ok(None);
            };
            change(&mut p);
            match self.products.update(&p).await {
                Ok(p) => break Some(p),
                Err(e) if matches!(e.kind(), ErrorKind::Conflict(_)) && attempt < 5 => continue,
                Err(e) => return Err(e),
            }
        };
        self.queries.invalidate_tag("products").await;
        Ok(result)
    }

    // ---- orders ----

    /// Check out `lines` for `customer`: one transaction that decrements the
    /// stock of every line with a guarded increment and writes the order.
    ///
    /// Each line is one statement on the server,
    /// `UPDATE bs_inventory SET stock = stock - $1, version = version + 1
    /// WHERE sku = $2 AND stock >= $1 RETURNING ...`: no read of the row
    /// first, so no version conflict between buyers and no retry loop. A
    /// concurrent buyer of the same SKU waits for the row lock and then
    /// sees the new stock; a failed guard (`Conflict(Guard)`) is "out of
    /// stock" and rolls the whole order back. SKUs are decremented in
    /// sorted order, so two multi-line orders cannot deadlock.
    pub async fn checkout(
        &self,
        customer: Uuid,
        lines: &[CartLine],
    ) -> std::result::Result<OrderView, CheckoutError> {
        if lines.is_empty() || lines.len() > 20 {
            return Err(CheckoutError::Invalid("1..=20 lines".into()));
        }
        let mut merged: BTreeMap<String, i64> = BTreeMap::new();
        for l in lines {
            if !(1..=100).contains(&l.qty) {
                return Err(CheckoutError::Invalid("qty must be 1..=100".into()));
            }
            *merged.entry(l.sku.clone()).or_default() += l.qty;
        }
        // Prices come from the catalog (cached), before the transaction opens.
        let mut priced = Vec::new();
        for (sku, qty) in &merged {
            let Some(p) = self.products.get(sku).await? else {
                return Err(CheckoutError::UnknownProduct(sku.clone()));
            };
            priced.push(OrderLine {
                id: Uuid::now_v7(),
                order_id: Uuid::nil(),
                sku: sku.clone(),
                qty: *qty,
                price_cents: p.price_cents,
            });
        }
        self.main
            .transaction(move |tx| {
                Box::pin(async move {
                    let inventory = tx
                        .repository::<Inventory>()
                        .layer(Metrics::new("main").slow_threshold(SLOW_THRESHOLD));
                    let orders = tx
                        .repository::<Order>()
                        .layer(Metrics::new("main").slow_threshold(SLOW_THRESHOLD));
                    let order_lines = tx
                        .repository::<OrderLine>()
                        .layer(Metrics::new("main").slow_threshold(SLOW_THRESHOLD));
                    for line in &priced {
                        let take = Update::new().inc(Inventory::STOCK, -line.qty);
                        let enough = Guard::when(Inventory::STOCK.gte(line.qty));
                        match inventory.patch(&line.sku, &take, &enough).await {
                            Ok(_) => {}
                            Err(e) if e.kind() == &ErrorKind::Conflict(ConflictKind::Guard) => {
                                return Err(CheckoutError::OutOfStock(line.sku.clone()));
                            }
                            Err(e) if e.is_not_found() => {
                                return Err(CheckoutError::UnknownProduct(line.sku.clone()));
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                    let order = Order {
                        id: Uuid::now_v7(),
                        customer_id: customer,
                        total_cents: priced.iter().map(|l| l.qty * l.price_cents).sum(),
                        created_at: Utc::now(),
                    };
                    let order = orders.insert(&order).await?;
                    let mut lines = priced;
                    for l in &mut lines {
                        l.order_id = order.id;
                    }
                    order_lines.insert_many(&lines).await?;
                    Ok(OrderView { order, lines })
                })
            })
            .await
    }

    /// A customer's orders, newest first, with their lines: two queries
    /// (`Order::LINES` loads the lines of all of them at once).
    pub async fn orders_of(&self, customer: Uuid) -> Result<Vec<OrderView>> {
        let q = Query::filter(Order::CUSTOMER_ID.eq(customer))
            .sort(Order::CREATED_AT.desc())
            .limit(50);
        Ok(self
            .orders
            .find_with(&q, Order::LINES, &*self.db)
            .await?
            .into_iter()
            .map(|w| OrderView {
                order: w.entity,
                lines: w.related,
            })
            .collect())
    }

    // ---- shops (tenants) ----

    /// A shop's price list.
    pub async fn shop_items(&self, shop: &str) -> Result<Vec<ShopItem>> {
        match &self.shops {
            ShopTenants::Schemas { tenants, shops } => {
                let id = shops
                    .get(shop)
                    .ok_or_else(|| Error::not_found(format!("no shop `{shop}`")))?;
                tenants
                    .repository::<ShopItem>(id)
                    .layer(Metrics::new("main"))
                    .find(&Query::all().sort(ShopItem::SKU.asc()))
                    .await
            }
            ShopTenants::Unavailable(why) => Err(Error::unsupported(why.clone())),
        }
    }

    /// Insert the demo data ([`crate::seed`]) that is missing: rows that
    /// exist are left alone.
    pub async fn seed(&self) -> Result<()> {
        let products = seed::products();
        let inserted = App::insert_if_missing(self.products(), &products).await?;
        App::insert_if_missing(&self.reviews, &seed::reviews()).await?;
        App::insert_if_missing(self.inventory(), &seed::inventory(&products)).await?;
        App::insert_if_missing(self.customers(), &seed::customers()).await?;
        let vectors: Vec<BookVector> = products
            .iter()
            .filter_map(crate::search::book_vector)
            .collect();
        App::insert_if_missing(&self.vectors, &vectors).await?;
        self.seed_shops(&products).await?;
        tracing::info!(
            products = products.len(),
            new_products = inserted,
            customers = seed::CUSTOMERS,
            "demo data seeded"
        );
        Ok(())
    }

    pub(crate) async fn seed_shops(&self, products: &[Product]) -> Result<()> {
        if let ShopTenants::Schemas { tenants, shops } = &self.shops {
            for (i, shop) in SHOPS.iter().enumerate() {
                let Some(id) = shops.get(*shop) else { continue };
                let repo = tenants.repository::<ShopItem>(id);
                for (j, p) in products.iter().enumerate() {
                    repo.upsert(&ShopItem {
                        sku: p.sku.clone(),
                        price_cents: price_in_shop(p.price_cents, i),
                        featured: j % 3 == i,
                    })
                    .await?;
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn insert_if_missing<E: persistence::Entity>(
        repo: &SharedRepository<E>,
        rows: &[E],
    ) -> Result<u64> {
        let mut n = 0;
        for row in rows {
            match repo.insert(row).await {
                Ok(_) => n += 1,
                Err(e) if matches!(e.kind(), ErrorKind::Conflict(ConflictKind::DuplicateId)) => {}
                Err(e) if matches!(e.kind(), ErrorKind::Conflict(ConflictKind::Unique { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Drop everything this instance created (schema, tenant schemas, Mongo
    /// database) and close the pools. For tests and demos on shared servers.
    pub async fn destroy(&self) -> Result<()> {
        if let ShopTenants::Schemas { tenants, shops } = &self.shops {
            for id in shops.values() {
                tenants.drop_tenant(id).await?;
            }
        }
        self.main.drop_schema().await?;
        if let Some(m) = &self.catalog {
            m.drop_database().await?;
        }
        self.db.shutdown().await;
        Ok(())
    }
}

async fn top_rated_mongo(store: &MongoStore) -> Result<TopRatedView> {
    let pipeline = Pipeline::<Product>::new()
        .filter(&Product::RATING.gt(0.0))?
        .sort(&[Product::RATING.desc(), Product::SKU.asc()])?
        .stage(bson::doc! { "$group": {
            "_id": "$category",
            "sku": { "$first": "$_id" },
            "title": { "$first": "$title" },
            "rating": { "$first": "$rating" },
            "reviews": { "$first": "$review_count" },
        } })
        .stage(bson::doc! { "$sort": { "_id": 1 } });
    let start = std::time::Instant::now();
    let rows = store
        .repository::<Product>()
        .aggregate_pipeline::<TopRatedRow>(pipeline)
        .await;
    record(
        "catalog",
        "bs_products",
        "aggregate",
        "aggregate bs_products [$match rating > ?, $sort rating -1 _id 1, $group by category $first, $sort _id 1]",
        start,
        &rows,
    );
    Ok(TopRatedView {
        categories: rows?
            .into_iter()
            .map(|r| TopRated {
                category: r.category,
                sku: r.sku,
                title: r.title,
                rating: r.rating,
                reviews: r.reviews,
            })
            .collect(),
        computed_by: "mongodb aggregation pipeline ($match, $sort, $group)".into(),
    })
}

/// The same as the pipeline, for the memory store (which has no pipelines).
async fn top_rated_in_app(repo: &SharedRepository<Product>) -> Result<TopRatedView> {
    let rated = repo
        .find(&Query::filter(Product::RATING.gt(0.0)).sort(Product::RATING.desc()))
        .await?;
    let mut best: HashMap<String, &Product> = HashMap::new();
    for p in &rated {
        let e = best.entry(p.category.clone()).or_insert(p);
        if p.rating > e.rating || (p.rating == e.rating && p.sku < e.sku) {
            *e = p;
        }
    }
    let mut categories: Vec<TopRated> = best
        .into_values()
        .map(|p| TopRated {
            category: p.category.clone(),
            sku: p.sku.clone(),
            title: p.title.clone(),
            rating: p.rating,
            reviews: p.review_count,
        })
        .collect();
    categories.sort_by(|a, b| a.category.cmp(&b.category));
    tracing::debug!("top-rated computed in the application: the memory store has no aggregation");
    Ok(TopRatedView {
        categories,
        computed_by: "in the application: the memory document store has no aggregation pipeline"
            .into(),
    })
}

/// Record an operation the repository layers do not see (aggregations) under the framework's metric names.
fn record<T>(
    db: &'static str,
    entity: &'static str,
    op: &'static str,
    statement: &'static str,
    start: std::time::Instant,
    r: &Result<T>,
) {
    use persistence::layer::metric_names as n;
    let outcome = match r {
        Ok(_) => "ok",
        Err(e) => match e.kind() {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict(_) => "conflict",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            _ => "backend",
        },
    };
    metrics::counter!(n::OPERATIONS, n::LABEL_DB => db, n::LABEL_ENTITY => entity, n::LABEL_OP => op, n::LABEL_OUTCOME => outcome).increment(1);
    let elapsed = start.elapsed();
    metrics::histogram!(n::OPERATION_DURATION, n::LABEL_DB => db, n::LABEL_ENTITY => entity, n::LABEL_OP => op)
        .record(elapsed.as_secs_f64());
    if elapsed >= SLOW_THRESHOLD {
        metrics::counter!(n::SLOW_OPERATIONS, n::LABEL_DB => db, n::LABEL_ENTITY => entity, n::LABEL_OP => op)
            .increment(1);
        persistence::layer::SlowLog::global().record(persistence::layer::SlowEntry {
            at: std::time::SystemTime::now(),
            db: db.to_string(),
            entity: entity.to_string(),
            op: op.to_string(),
            duration: elapsed,
            statement: Some(statement.to_string()),
        });
    }
}

impl App {
    /// Search the catalog's text and the similar books at once.
    pub async fn search(&self, q: &str) -> Result<crate::search::SearchView> {
        let q = q.trim();
        if q.is_empty() || q.len() > 200 {
            return Err(Error::invalid_input("q must be 1..=200 characters"));
        }
        let mut req = persistence::search::SearchRequest::text(q)
            .limit(crate::search::TEXT_SOURCE, 10)
            .limit(crate::search::SIMILAR_SOURCE, 5)
            .deadline(crate::search::DEADLINE);
        if let Some(v) = crate::search::embed(q) {
            req = req.vector(v);
        }
        let res: persistence::search::SearchResults = self.db.search(&req).await?;
        let matches = res
            .hits::<Product>(crate::search::TEXT_SOURCE)?
            .into_iter()
            .map(|(p, score)| crate::search::Found {
                sku: p.sku,
                title: p.title,
                author: p.author,
                score,
            })
            .collect();
        let mut similar = Vec::new();
        for (v, score) in res.hits::<BookVector>(crate::search::SIMILAR_SOURCE)? {
            if let Some(p) = self.products().get(&v.sku).await? {
                similar.push(crate::search::Found {
                    sku: p.sku,
                    title: p.title,
                    author: p.author,
                    score,
                });
            }
        }
        Ok(crate::search::SearchView {
            query: q.to_string(),
            matches,
            similar,
            sources: res
                .sources
                .iter()
                .map(|s| (s.source.clone(), s.status.label()))
                .collect(),
            elapsed_ms: res.elapsed_ms,
        })
    }
}
