//! The conformance cases, one file per topic.
//!
//! A case is a `pub async fn name<B: Backend>(b: &B)` in one of the topic
//! files; it panics on a violation with a message naming what differed. The
//! build script (`persistence-core/build.rs`) finds every such function and
//! generates [`all`], so a new case is only its function. A case that needs a
//! [`Capabilities`] flag says so with a doc line `/// Needs: flag, flag`; on a
//! backend whose declared capabilities lack the flag it is reported as skipped
//! (ignored), never as passed. Shared helpers live in `support.rs`.

use crate::conformance::{Backend, CaseFuture};
use crate::repository::Capabilities;

pub mod aggregate;
pub mod aggregate_typed;
pub mod concurrency;
pub mod crud;
pub mod filter;
pub mod filter_edge;
pub mod fulltext;
pub mod lifecycle;
pub mod locks;
pub mod nearest;
pub mod outcomes;
pub mod paging;
pub mod pop;
pub mod read;
pub mod relations;
pub mod roundtrip;
pub mod schema;
pub mod select;
mod support;
pub mod tenancy;
pub mod text;
pub mod update;

// The cases stay reachable at their old paths (`cases::roundtrip_all_types`).
pub use self::aggregate::*;
pub use self::aggregate_typed::*;
pub use self::concurrency::*;
pub use self::crud::*;
pub use self::filter::*;
pub use self::filter_edge::*;
pub use self::fulltext::*;
pub use self::lifecycle::*;
pub use self::locks::*;
pub use self::nearest::*;
pub use self::outcomes::*;
pub use self::paging::*;
pub use self::pop::*;
pub use self::read::*;
pub use self::relations::*;
pub use self::roundtrip::*;
pub use self::schema::*;
pub use self::select::*;
pub use self::tenancy::*;
pub use self::text::*;
pub use self::update::*;

/// One conformance case for backend `B`.
pub struct Case<B: Backend> {
    /// The function name, also the test name (`conformance::<name>`).
    pub name: &'static str,
    /// The topic file it lives in (`crud`, `filter`, ...).
    pub topic: &'static str,
    /// The [`Capabilities`] flags it needs (its `/// Needs:` line).
    pub needs: &'static [&'static str],
    /// Run the case against a backend.
    pub run: for<'a> fn(&'a B) -> CaseFuture<'a>,
}

impl<B: Backend> Case<B> {
    /// The flags this case needs that `caps` lacks (empty: the case applies).
    pub fn missing(&self, caps: &Capabilities) -> Vec<&'static str> {
        self.needs
            .iter()
            .copied()
            .filter(|flag| capability(caps, flag) != Some(true))
            .collect()
    }
}

include!(concat!(env!("OUT_DIR"), "/conformance_cases.rs"));
