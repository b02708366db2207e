//! Declared relations and eager loading (issue #16).
//!
//! ```text
//! #[derive(Entity)]
//! #[entity(name = "orders", belongs_to(Customer, key = customer_id, on_delete = cascade))]
//! struct Order { #[entity(id)] id: i64, customer_id: i64, /* … */ }
//!
//! #[derive(Entity)]
//! #[entity(name = "customers", has_many(Order, key = customer_id))]
//! struct Customer { #[entity(id)] id: i64, /* … */ }
//! ```
//!
//! * **`belongs_to(Target, key = field, on_delete = restrict | cascade | set_null, name = "..")`**
//!   on the child: `field` holds a `Target` id (its type is `Target::Id`, or
//!   `Option<Target::Id>` when the parent is optional; checked at compile
//!   time). It generates the typed handle `Order::CUSTOMER` (the relation's
//!   name, default the target's name in snake case, upper-cased) and an
//!   index on the key. `on_delete` defaults to `restrict`; `set_null` needs
//!   an `Option` key.
//! * **`has_many(Child, key = field, name = "..")` / `has_one(..)`** on the
//!   parent: the reverse of the child's `belongs_to` with that key (it must
//!   exist: checked at compile time). Handles: `Customer::ORDERS`
//!   (default name: the child's snake-case name plus `s`), `Customer::PROFILE`.
//!
//! **Enforcement.** Every backend refuses a write whose non-null key names
//! no parent (`Conflict(MissingParent { relation: "orders.customer" })`)
//! and applies `on_delete` when a parent row is removed: `restrict` refuses
//! the delete while children exist (`Conflict(Referenced { .. })`),
//! `cascade` removes them (recursively), `set_null` clears their key.
//! Only removing a row counts: a soft delete keeps it (and its children),
//! as an `UPDATE` does not fire a SQL foreign key. SQL backends do it with
//! real foreign keys; see each backend for the details.
//!
//! **Eager loading** ([`LoadExt::find_with`], [`LoadExt::page_with`],
//! [`LoadExt::stream_with`]): the rows of a query with their related rows,
//! each relation level loaded with one batched query per 1,000 keys
//! (`id IN (…)`, bound as one parameter), so loading 1,000 orders with
//! their customer and lines costs three queries, not 2,001. The handles say
//! what comes back, typed:
//!
//! ```text
//! let rows: Vec<With<Order, (Customer, Vec<OrderLine>)>> =
//!     orders.find_with(&query, (Order::CUSTOMER, Order::LINES), &repos).await?;
//! rows[0].customer_name();          // With derefs to the Order
//! let (customer, lines) = &rows[0].related;
//! let deep = customers.find_with(&q, Customer::ORDERS.then(Order::LINES), &repos).await?;
//! // Vec<With<Customer, Vec<With<Order, Vec<OrderLine>>>>>
//! ```
//!
//! A required key (`customer_id: i64`) gives the parent itself (a missing
//! parent is `Conflict(MissingParent)` naming the relation); an optional key
//! gives `Option<Parent>`; `has_many` a `Vec` (in id order), `has_one` an
//! `Option`. A tuple of handles loads each; `.then(..)` nests to any depth.
//! Related rows come from a [`Resolve`]: [`Repos`] (repositories you pass,
//! of any store: a relation's target may live elsewhere), or a store / the
//! `Persistence` manager, which hand out their own repositories (with their
//! layers and cache). Loading goes through [`Repository::find`] only, so
//! every backend and decorator (cache, audit, failover, tenant scope) gets
//! it, and the filters are checked as any other (tenant scope, soft delete:
//! deleted rows are not loaded).
//!
//! **Across stores.** A relation's target may live in another store (the
//! `Persistence` manager places entities in named databases). The store of
//! the child cannot see the parent, so the relation is a [`CrossStore`]
//! one for its repository: no parent check, no foreign key; only
//! `on_delete = restrict` may cross stores, and it is not enforced there
//! (the manager refuses `cascade` / `set_null` across stores with a
//! `Config` error). Eager loading works the same, one batched query per
//! level on each store; a dangling reference is skipped by `has_many` /
//! `has_one`, `None` for an optional key and `Conflict(MissingParent)` for a
//! required one, never a panic.
//!
//! [`Repository::find`]: crate::Repository::find

mod cross;
mod handle;
mod load;
mod registry;
mod resolve;

pub use crate::entity::{OnDelete, RelationKind, RelationMeta};
pub use cross::CrossStore;
pub use handle::{BelongsTo, ForeignKey, HasMany, HasOne};
pub use load::{Container, Include, LOAD_CHUNK, LoadExt, Then, With};
pub use registry::{children_of, register};
pub use resolve::{Repos, Resolve};
