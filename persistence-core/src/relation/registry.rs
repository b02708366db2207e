//! Which entities refer to which: a parent learns its children from its
//! own `has_many` / `has_one` declarations and from every child entity a
//! repository was created for in this process ([`register`]), so a
//! backend that enforces `on_delete` itself (MongoDB) finds the children
//! of a row it deletes.

use std::sync::{OnceLock, RwLock};

use crate::entity::{EntityMeta, RelationKind, RelationMeta};

fn registered() -> &'static RwLock<Vec<&'static EntityMeta>> {
    static REGISTERED: OnceLock<RwLock<Vec<&'static EntityMeta>>> = OnceLock::new();
    REGISTERED.get_or_init(RwLock::default)
}

/// Remember `meta` as a possible child (when it declares a `belongs_to`).
/// Backends call it when they create a repository; cheap when known.
pub fn register(meta: &'static EntityMeta) {
    if meta.belongs_to().next().is_none() {
        return;
    }
    let known = |list: &Vec<&'static EntityMeta>| list.iter().any(|m| std::ptr::eq(*m, meta));
    if registered().read().map(|l| known(&l)).unwrap_or(true) {
        return;
    }
    if let Ok(mut list) = registered().write() {
        if !known(&list) {
            list.push(meta);
        }
    }
}

/// The `belongs_to` relations naming `parent`, with the child's metadata:
/// from `parent`'s `has_many` / `has_one` and from the registered children.
pub fn children_of(parent: &EntityMeta) -> Vec<(&'static EntityMeta, &'static RelationMeta)> {
    let mut out: Vec<(&'static EntityMeta, &'static RelationMeta)> = Vec::new();
    let mut add = |child: &'static EntityMeta| {
        for r in child.belongs_to() {
            let dup = out
                .iter()
                .any(|(c, o)| c.name == child.name && o.name == r.name);
            if (r.target)().name == parent.name && !dup {
                out.push((child, r));
            }
        }
    };
    for r in parent
        .relations
        .iter()
        .filter(|r| r.kind != RelationKind::BelongsTo)
    {
        add((r.target)());
    }
    let list: Vec<&'static EntityMeta> = registered().read().map(|l| l.clone()).unwrap_or_default();
    for child in list {
        add(child);
    }
    out
}
