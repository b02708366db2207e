//! Eager loading: [`Include`] (what a handle, a tuple of handles or a
//! [`Then`] loads for a batch of rows), [`With`] (a row and its related
//! rows) and [`LoadExt`] (`find_with`, `page_with`, `stream_with` on every
//! repository), written once on top of [`Repository::find`].

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use futures_util::StreamExt as _;

use crate::entity::Entity;
use crate::error::Result;
use crate::filter::Filter;
use crate::query::{Cursor, Page, Query};
use crate::repository::{BoxStream, Repository, SharedRepository};
use crate::value::Value;

use super::handle::{BelongsTo, ForeignKey, HasMany, HasOne, missing_parent};
use super::resolve::Resolve;

/// Keys per batched query (`key IN (…)` of at most this many values); also
/// the rows per batch of [`LoadExt::stream_with`].
pub const LOAD_CHUNK: usize = 1000;

/// A row with its related rows: `With<Order, (Customer, Vec<OrderLine>)>`.
/// Derefs to the row, so `order.total` reads as before; `related` holds
/// what the handles loaded, in their order.
#[derive(Debug, Clone, PartialEq)]
pub struct With<E, R> {
    /// The row.
    pub entity: E,
    /// What the handles loaded for it.
    pub related: R,
}

impl<E, R> Deref for With<E, R> {
    type Target = E;
    fn deref(&self) -> &E {
        &self.entity
    }
}

/// Something that loads related rows for a batch of `E` rows: a relation
/// handle, a tuple of them, or a [`Then`].
pub trait Include<E: Entity>: Send + Sync {
    /// What one row gets.
    type Out: Send + Sync + 'static;
    /// One `Out` per row of `rows`, in order, with one batched query per
    /// relation level (per [`LOAD_CHUNK`] keys).
    fn load<'a, S: Resolve>(
        &'a self,
        rows: &'a [E],
        from: &'a S,
    ) -> impl Future<Output = Result<Vec<Self::Out>>> + Send + 'a;
}

/// The rows of `T` whose `field` is one of `keys`, one query per
/// [`LOAD_CHUNK`] keys, in no particular order
/// ([`Repository::find_unordered`]: the callers group or look rows up by
/// key, and order groups themselves).
async fn fetch_in<T: Entity>(
    repo: &SharedRepository<T>,
    field: &'static str,
    keys: Vec<Value>,
) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(LOAD_CHUNK) {
        let q = Query::filter(Filter::field(field).is_in(chunk.iter().cloned()));
        out.extend(repo.find_unordered(&q).await?);
    }
    Ok(out)
}

/// The distinct ids as filter values of the id type of `T`.
fn key_values<'i, T: Entity>(ids: impl Iterator<Item = &'i T::Id>) -> Result<Vec<Value>> {
    let ty = T::meta().id_field().ty;
    ids.collect::<BTreeSet<_>>()
        .into_iter()
        .map(|id| Value::from_serialize(id)?.normalize(ty))
        .collect()
}

impl<E: Entity, T: Entity, K: ForeignKey<T::Id>> Include<E> for BelongsTo<E, T, K> {
    type Out = K::Loaded<T>;
    async fn load<'a, S: Resolve>(&'a self, rows: &'a [E], from: &'a S) -> Result<Vec<Self::Out>> {
        let keys = key_values::<T>(rows.iter().filter_map(|r| self.parent_id(r)))?;
        let mut found: HashMap<T::Id, T> = HashMap::with_capacity(keys.len());
        if !keys.is_empty() {
            let repo = from.repository::<T>().await?;
            for t in fetch_in(&repo, T::meta().id_field().name, keys).await? {
                found.insert(t.id().clone(), t);
            }
        }
        rows.iter()
            .map(|r| {
                let id = self.parent_id(r);
                let parent = id.and_then(|id| found.get(id).cloned());
                match (K::loaded(parent), id) {
                    (Some(loaded), _) => Ok(loaded),
                    (None, Some(id)) => Err(missing_parent::<E, T>(self.name(), id)),
                    (None, None) => Err(crate::Error::backend("unreachable: no parent id")),
                }
            })
            .collect()
    }
}

/// The children of `parents` through a reverse relation, grouped by parent
/// id (each group in id order).
async fn children<P: Entity, C: Entity, S: Resolve>(
    parents: &[P],
    key: &'static str,
    parent_of: fn(&C) -> Option<&P::Id>,
    from: &S,
) -> Result<HashMap<P::Id, Vec<C>>> {
    let keys = key_values::<P>(parents.iter().map(Entity::id))?;
    let mut groups: HashMap<P::Id, Vec<C>> = HashMap::with_capacity(keys.len());
    if keys.is_empty() {
        return Ok(groups);
    }
    let repo = from.repository::<C>().await?;
    for c in fetch_in(&repo, key, keys).await? {
        if let Some(p) = parent_of(&c) {
            groups.entry(p.clone()).or_default().push(c);
        }
    }
    for group in groups.values_mut() {
        group.sort_unstable_by(|a, b| a.id().cmp(b.id()));
    }
    Ok(groups)
}

/// Hand each row its group: moved out for its last occurrence, cloned for
/// earlier ones (a nested level may list a parent twice).
fn distribute<P: Entity, G: Clone + Default>(rows: &[P], mut groups: HashMap<P::Id, G>) -> Vec<G> {
    let mut left: HashMap<&P::Id, usize> = HashMap::new();
    for r in rows {
        *left.entry(r.id()).or_default() += 1;
    }
    rows.iter()
        .map(|r| {
            let n = left.get_mut(r.id()).map(|n| {
                *n -= 1;
                *n
            });
            if n == Some(0) {
                groups.remove(r.id()).unwrap_or_default()
            } else {
                groups.get(r.id()).cloned().unwrap_or_default()
            }
        })
        .collect()
}

impl<P: Entity, C: Entity> Include<P> for HasMany<P, C> {
    type Out = Vec<C>;
    async fn load<'a, S: Resolve>(&'a self, rows: &'a [P], from: &'a S) -> Result<Vec<Vec<C>>> {
        let groups = children(rows, self.key, self.parent_of, from).await?;
        Ok(distribute(rows, groups))
    }
}

impl<P: Entity, C: Entity> Include<P> for HasOne<P, C> {
    type Out = Option<C>;
    async fn load<'a, S: Resolve>(&'a self, rows: &'a [P], from: &'a S) -> Result<Vec<Option<C>>> {
        let groups = children(rows, self.key, self.parent_of, from).await?;
        let firsts = groups
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().next()))
            .collect();
        Ok(distribute(rows, firsts))
    }
}

/// What a relation gives one row, seen as a container of related rows, so
/// a next level can load for all of them at once ([`Then`]).
pub trait Container: Sized + Send + Sync + 'static {
    /// The related entity.
    type Item: Entity;
    /// The same container of `With<Item, R>`.
    type Map<R: Send + Sync + 'static>: Send + Sync + 'static;
    /// Move the items out into `into`; returns how many.
    fn take(self, into: &mut Vec<Self::Item>) -> usize;
    /// Rebuild from the next `n` items of `from`.
    fn rebuild<R: Send + Sync + 'static>(
        n: usize,
        from: &mut impl Iterator<Item = With<Self::Item, R>>,
    ) -> Self::Map<R>;
}

impl<T: Entity> Container for T {
    type Item = T;
    type Map<R: Send + Sync + 'static> = With<T, R>;
    fn take(self, into: &mut Vec<T>) -> usize {
        into.push(self);
        1
    }
    fn rebuild<R: Send + Sync + 'static>(
        _: usize,
        from: &mut impl Iterator<Item = With<T, R>>,
    ) -> With<T, R> {
        from.next().expect("one item per row")
    }
}

impl<T: Entity> Container for Option<T> {
    type Item = T;
    type Map<R: Send + Sync + 'static> = Option<With<T, R>>;
    fn take(self, into: &mut Vec<T>) -> usize {
        match self {
            Some(t) => {
                into.push(t);
                1
            }
            None => 0,
        }
    }
    fn rebuild<R: Send + Sync + 'static>(
        n: usize,
        from: &mut impl Iterator<Item = With<T, R>>,
    ) -> Option<With<T, R>> {
        if n == 0 { None } else { from.next() }
    }
}

impl<T: Entity> Container for Vec<T> {
    type Item = T;
    type Map<R: Send + Sync + 'static> = Vec<With<T, R>>;
    fn take(self, into: &mut Vec<T>) -> usize {
        let n = self.len();
        into.extend(self);
        n
    }
    fn rebuild<R: Send + Sync + 'static>(
        n: usize,
        from: &mut impl Iterator<Item = With<T, R>>,
    ) -> Vec<With<T, R>> {
        from.take(n).collect()
    }
}

/// A relation, then relations of what it loaded: `Customer::ORDERS.then(Order::LINES)`.
/// Nest deeper on the right: `A.then(B.then(C))`; `B` may be a tuple.
#[derive(Debug, Clone, Copy)]
pub struct Then<A, B>(pub A, pub B);

impl<E, A, B> Include<E> for Then<A, B>
where
    E: Entity,
    A: Include<E>,
    A::Out: Container,
    B: Include<<A::Out as Container>::Item>,
{
    type Out = <A::Out as Container>::Map<B::Out>;
    async fn load<'a, S: Resolve>(&'a self, rows: &'a [E], from: &'a S) -> Result<Vec<Self::Out>> {
        let outs = self.0.load(rows, from).await?;
        let mut items = Vec::new();
        let counts: Vec<usize> = outs.into_iter().map(|o| o.take(&mut items)).collect();
        let related = self.1.load(&items, from).await?;
        let mut it = items
            .into_iter()
            .zip(related)
            .map(|(entity, related)| With { entity, related });
        Ok(counts
            .into_iter()
            .map(|n| <A::Out as Container>::rebuild(n, &mut it))
            .collect())
    }
}

macro_rules! then_method {
    ($($ty:ident),*) => {$(
        impl<P: Entity, C> $ty<P, C> {
            /// Load `next` for what this relation loads (nested eager loading).
            pub fn then<N>(self, next: N) -> Then<Self, N> {
                Then(self, next)
            }
        }
    )*};
}
impl<E, T: Entity, K> BelongsTo<E, T, K> {
    /// Load `next` for what this relation loads (nested eager loading).
    pub fn then<N>(self, next: N) -> Then<Self, N> {
        Then(self, next)
    }
}
then_method!(HasMany, HasOne);

macro_rules! tuple_include {
    ($(($($t:ident $v:ident),+)),*) => {$(
        impl<E: Entity, $($t: Include<E>),+> Include<E> for ($($t,)+) {
            type Out = ($($t::Out,)+);
            async fn load<'a, S: Resolve>(&'a self, rows: &'a [E], from: &'a S) -> Result<Vec<Self::Out>> {
                let ($($v,)+) = self;
                let ($($v,)+) = futures_util::try_join!($($v.load(rows, from)),+)?;
                $(let mut $v = $v.into_iter();)+
                Ok(rows
                    .iter()
                    .map(|_| Some(($($v.next()?,)+)))
                    .collect::<Option<Vec<_>>>()
                    .unwrap_or_default())
            }
        }
    )*};
}
tuple_include!((A a), (A a, B b), (A a, B b, C c), (A a, B b, C c, D d));

/// Eager loading on every repository (see [`crate::relation`]).
pub trait LoadExt<E: Entity>: Repository<E> {
    /// [`find`](Repository::find), each row with what `include` loads:
    /// one batched query per relation level.
    fn find_with<'a, I: Include<E> + 'a, S: Resolve>(
        &'a self,
        query: &'a Query,
        include: I,
        from: &'a S,
    ) -> impl Future<Output = Result<Vec<With<E, I::Out>>>> + Send + 'a {
        async move {
            let rows = self.find(query).await?;
            attach(rows, &include, from).await
        }
    }

    /// [`page`](Repository::page), each row with what `include` loads.
    fn page_with<'a, I: Include<E> + 'a, S: Resolve>(
        &'a self,
        query: &'a Query,
        cursor: Option<&'a Cursor>,
        include: I,
        from: &'a S,
    ) -> impl Future<Output = Result<Page<With<E, I::Out>>>> + Send + 'a {
        async move {
            let page = self.page(query, cursor).await?;
            Ok(Page {
                items: attach(page.items, &include, from).await?,
                next: page.next,
            })
        }
    }

    /// [`stream`](Repository::stream), each row with what `include`
    /// loads, loaded per batch of [`LOAD_CHUNK`] rows.
    fn stream_with<'a, I: Include<E> + 'a, S: Resolve>(
        &'a self,
        query: &Query,
        include: I,
        from: &'a S,
    ) -> BoxStream<'a, Result<With<E, I::Out>>> {
        let include = Arc::new(include);
        Box::pin(
            self.stream(query)
                .chunks(LOAD_CHUNK)
                .then(move |batch| {
                    let include = include.clone();
                    async move {
                        let rows: Result<Vec<E>> = batch.into_iter().collect();
                        let loaded = match rows {
                            Ok(rows) => attach(rows, &*include, from).await,
                            Err(e) => Err(e),
                        };
                        match loaded {
                            Ok(v) => v.into_iter().map(Ok).collect::<Vec<_>>(),
                            Err(e) => vec![Err(e)],
                        }
                    }
                })
                .flat_map(futures_util::stream::iter),
        )
    }
}

impl<E: Entity, R: Repository<E> + ?Sized> LoadExt<E> for R {}

/// `rows` with what `include` loads for them.
async fn attach<E: Entity, I: Include<E>, S: Resolve>(
    rows: Vec<E>,
    include: &I,
    from: &S,
) -> Result<Vec<With<E, I::Out>>> {
    let related = include.load(&rows, from).await?;
    Ok(rows
        .into_iter()
        .zip(related)
        .map(|(entity, related)| With { entity, related })
        .collect())
}
