//! Invalidation along relations. A delete of a parent changes child rows the
//! cache never saw written: the store deletes them (`on_delete = cascade`,
//! recursively) or clears their key (`set_null`). So after a delete of an
//! entity type that has such children, everything cached for each of those
//! child types under the same key prefix is dropped: L2, the other
//! instances' L1 (through the backplane) and this process's L1, before the
//! delete returns.
//!
//! The children are found among
//! 1. the entity types this layer wraps under the same prefix in this
//!    process (whichever side declares what), and
//! 2. the `has_many` / `has_one` relations declared on the parent (and on the
//!    children found, recursively): a process that caches the parent but
//!    not the child still drops the child's L2 entries and tells the other
//!    instances, as long as the parent declares the reverse relation.
//!
//! A child type that is in neither (not wrapped here, not declared on the
//! parent) is not reached; its other instances see the change after their TTL.
//! Dropping the whole child type, not the affected rows, is the price of not
//! knowing which rows the store changed without reading them.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use persistence_core::relation::RelationKind;
use persistence_core::{Entity, EntityMeta, OnDelete, Repository};

use crate::repository::Inner;
use crate::repository::entries::Target;
use crate::shared::{DropAll, Shared};

impl<E: Entity, R: Repository<E> + 'static> DropAll for Inner<E, R> {
    fn drop_all(self: Arc<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move { self.after_write(Target::All).await })
    }
}

impl<E: Entity, R: Repository<E> + 'static> Inner<E, R> {
    /// After a delete of this entity type (`deleted`: whether it may have
    /// removed a row; a failed delete may have landed), drop the cached
    /// entries of the child types the store may have changed with it.
    pub(crate) async fn after_delete(&self, deleted: bool) {
        if !deleted || !self.may_have_children() {
            return;
        }
        let meta = E::meta();
        let (known, live): (Vec<&'static EntityMeta>, Vec<_>) = {
            let list = self.shared.wrapped.lock();
            let same = list.iter().filter(|w| *w.prefix == *self.prefix);
            (
                same.clone().map(|w| w.meta).collect(),
                same.filter_map(|w| Some((w.meta.name, w.repo.upgrade()?)))
                    .collect(),
            )
        };
        let children = dependents(meta, &known);
        if children.is_empty() {
            return;
        }
        let mut drops: Vec<BoxFuture<'static, ()>> = Vec::new();
        for child in children {
            let here: Vec<&Arc<dyn DropAll>> = live
                .iter()
                .filter(|(name, _)| *name == child.name)
                .map(|(_, repo)| repo)
                .collect();
            if here.is_empty() {
                drops.push(Box::pin(drop_unwrapped(
                    self.shared.clone(),
                    self.prefix.clone(),
                    child,
                )));
            } else {
                drops.extend(here.into_iter().map(|r| r.clone().drop_all()));
            }
        }
        futures_util::future::join_all(drops).await;
    }

    /// Cheap test before the registry is read: some relation may lead to
    /// this type (it declares children, or a wrapped type points at it).
    fn may_have_children(&self) -> bool {
        let meta = E::meta();
        meta.relations
            .iter()
            .any(|r| r.kind != RelationKind::BelongsTo)
            || self.shared.wrapped.lock().iter().any(|w| {
                w.meta
                    .belongs_to()
                    .any(|r| r.on_delete != OnDelete::Restrict && (r.target)().name == meta.name)
            })
    }
}

/// The entity types whose rows a delete of `parent` may change through
/// `cascade` (followed further) and `set_null` relations, looked for among
/// `known` and the `has_many` / `has_one` targets met on the way. Each type
/// once; `parent` itself when it refers to itself.
pub(crate) fn dependents(
    parent: &'static EntityMeta,
    known: &[&'static EntityMeta],
) -> Vec<&'static EntityMeta> {
    let mut candidates: Vec<&'static EntityMeta> = Vec::new();
    let mut names: HashSet<&'static str> = HashSet::new();
    for m in known {
        if names.insert(m.name) {
            candidates.push(m);
        }
    }
    let mut out: Vec<&'static EntityMeta> = Vec::new();
    let mut visited: HashSet<&'static str> = HashSet::from([parent.name]);
    let mut queue = vec![parent];
    while let Some(p) = queue.pop() {
        for r in p
            .relations
            .iter()
            .filter(|r| r.kind != RelationKind::BelongsTo)
        {
            let target = (r.target)();
            if names.insert(target.name) {
                candidates.push(target);
            }
        }
        for &c in &candidates {
            for r in c.belongs_to() {
                if r.on_delete == OnDelete::Restrict || (r.target)().name != p.name {
                    continue;
                }
                if !out.iter().any(|m| m.name == c.name) {
                    out.push(c);
                }
                if r.on_delete == OnDelete::Cascade && visited.insert(c.name) {
                    queue.push(c);
                }
            }
        }
    }
    out
}

/// Drop the L2 entries of a child type no repository of this layer caches
/// here, and tell the other instances (their L1) through the backplane.
/// Without L2 nothing else holds them.
#[cfg(feature = "redis")]
async fn drop_unwrapped(shared: Arc<Shared>, prefix: Arc<str>, child: &'static EntityMeta) {
    use crate::backplane::Message;
    let Some(l2) = shared.l2.as_deref() else {
        return;
    };
    let keys = crate::keys::Keys::new(&prefix, child);
    let publish = shared.backplane.as_ref().map(|bp| {
        let msg = Message::All {
            base: keys.base().to_string(),
        };
        (bp.channel.as_str(), msg.encode(bp.origin))
    });
    match l2
        .invalidate(keys.gen_key(), Some(keys.epoch_key()), &[], publish, None)
        .await
    {
        Ok(()) => shared.redis_answered(),
        Err(e) => {
            tracing::debug!(entity = child.name, error = %e, "child cache invalidation queued");
            shared
                .outbox
                .push(keys.base(), keys.gen_key(), keys.epoch_key(), None);
        }
    }
}

#[cfg(not(feature = "redis"))]
async fn drop_unwrapped(_shared: Arc<Shared>, _prefix: Arc<str>, _child: &'static EntityMeta) {}

#[cfg(test)]
mod tests {
    use persistence_core::conformance::entities::{RelCustomer, RelLine, RelNote, RelOrder};

    use super::*;

    fn names(v: &[&'static EntityMeta]) -> Vec<&'static str> {
        let mut n: Vec<_> = v.iter().map(|m| m.name).collect();
        n.sort_unstable();
        n
    }

    #[test]
    fn children_come_from_declared_reverse_relations_and_wrapped_types() {
        // Customer → orders (restrict: not followed), notes (set_null).
        assert_eq!(
            names(&dependents(RelCustomer::meta(), &[])),
            ["conf_rel_notes"]
        );
        // Order → lines (cascade), declared on the order.
        assert_eq!(
            names(&dependents(RelOrder::meta(), &[])),
            ["conf_rel_lines"]
        );
        // Lines have no children.
        assert!(dependents(RelLine::meta(), &[RelOrder::meta()]).is_empty());
        // A note's parent found through the wrapped list alone.
        assert_eq!(
            names(&dependents(RelCustomer::meta(), &[RelNote::meta()])),
            ["conf_rel_notes"]
        );
    }
}
