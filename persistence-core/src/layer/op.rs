//! [`Op`]: the name of a repository operation, as decorators, metric
//! labels and errors see it. A leaf: the error type uses it too (to tell
//! whether an operation is idempotent), so it depends on nothing.

/// The repository operation being performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `ensure_schema`
    EnsureSchema,
    /// `verify_schema`
    VerifySchema,
    /// `get`
    Get,
    /// `get_many`
    GetMany,
    /// `insert`
    Insert,
    /// `insert_many`
    InsertMany,
    /// `update`
    Update,
    /// `upsert`
    Upsert,
    /// `delete`
    Delete,
    /// `delete_many`
    DeleteMany,
    /// `find`
    Find,
    /// `find_one`
    FindOne,
    /// `count`
    Count,
    /// `exists`
    Exists,
    /// `stream`
    Stream,
    /// `page`
    Page,
    /// `patch`
    Patch,
    /// `update_where`
    UpdateWhere,
    /// `find_one_and_delete`
    FindOneAndDelete,
    /// `select`
    Select,
    /// `distinct`
    Distinct,
    /// `aggregate`
    Aggregate,
    /// `purge`
    Purge,
    /// `find_nearest` (and `nearest(..)`)
    Nearest,
    /// `find_text` (and `search_text(..)`)
    Text,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 25] = [
        Op::EnsureSchema,
        Op::VerifySchema,
        Op::Get,
        Op::GetMany,
        Op::Insert,
        Op::InsertMany,
        Op::Update,
        Op::Upsert,
        Op::Delete,
        Op::DeleteMany,
        Op::Find,
        Op::FindOne,
        Op::Count,
        Op::Exists,
        Op::Stream,
        Op::Page,
        Op::Patch,
        Op::UpdateWhere,
        Op::FindOneAndDelete,
        Op::Select,
        Op::Distinct,
        Op::Aggregate,
        Op::Purge,
        Op::Nearest,
        Op::Text,
    ];

    /// The operation whose [`name`](Self::name) is `name`, if any (an
    /// [`Error`](crate::Error)'s operation is such a name, or another word such
    /// as `commit` for which this returns `None`).
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }

    /// The method name (used as the `op` metric label).
    pub fn name(self) -> &'static str {
        match self {
            Op::EnsureSchema => "ensure_schema",
            Op::VerifySchema => "verify_schema",
            Op::Get => "get",
            Op::GetMany => "get_many",
            Op::Insert => "insert",
            Op::InsertMany => "insert_many",
            Op::Update => "update",
            Op::Upsert => "upsert",
            Op::Delete => "delete",
            Op::DeleteMany => "delete_many",
            Op::Find => "find",
            Op::FindOne => "find_one",
            Op::Count => "count",
            Op::Exists => "exists",
            Op::Stream => "stream",
            Op::Page => "page",
            Op::Patch => "patch",
            Op::UpdateWhere => "update_where",
            Op::FindOneAndDelete => "find_one_and_delete",
            Op::Select => "select",
            Op::Distinct => "distinct",
            Op::Aggregate => "aggregate",
            Op::Purge => "purge",
            Op::Nearest => "find_nearest",
            Op::Text => "find_text",
        }
    }

    /// Whether the operation writes.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Op::Insert
                | Op::InsertMany
                | Op::Update
                | Op::Upsert
                | Op::Delete
                | Op::DeleteMany
                | Op::EnsureSchema
                | Op::Patch
                | Op::UpdateWhere
                | Op::FindOneAndDelete
                | Op::Purge
        )
    }

    /// Whether repeating the operation after an unknown outcome is safe:
    /// every read, `upsert`, `delete`, `delete_many`, `purge` and
    /// `ensure_schema`. Not `insert`/`insert_many` (a lost acknowledgement
    /// would turn into a duplicate error or a double write), `update` (a
    /// spurious version conflict), `patch`/`update_where` (an `inc` applied
    /// twice) nor `find_one_and_delete` (a second row popped, the first lost).
    pub fn is_idempotent(self) -> bool {
        !matches!(
            self,
            Op::Insert
                | Op::InsertMany
                | Op::Update
                | Op::Patch
                | Op::UpdateWhere
                | Op::FindOneAndDelete
        )
    }
}
