//! MongoDB server error codes: the ones the error map and the schema code
//! test for, and the names of the codes the map reports (for servers that
//! do not send `codeName`).

/// Duplicate key.
pub const DUPLICATE_KEY: i32 = 11000;
/// Duplicate key (legacy update form).
pub const DUPLICATE_KEY_UPDATE: i32 = 11001;
/// Document failed validation.
pub const DOCUMENT_VALIDATION_FAILURE: i32 = 121;
/// Operation exceeded its time limit.
pub const MAX_TIME_MS_EXPIRED: i32 = 50;
/// Concurrent write to the same document in transactions.
pub const WRITE_CONFLICT: i32 = 112;
/// Collection already exists.
pub const NAMESPACE_EXISTS: i32 = 48;
/// Index with the same name but other options.
pub const INDEX_OPTIONS_CONFLICT: i32 = 85;
/// Index with the same name but other keys.
pub const INDEX_KEY_SPECS_CONFLICT: i32 = 86;

/// The name MongoDB gives a server error code (`2` → `BadValue`), for
/// servers that do not send `codeName`.
pub fn code_name(code: i32) -> Option<&'static str> {
    Some(match code {
        1 => "InternalError",
        2 => "BadValue",
        4 => "NoSuchKey",
        5 => "GraphContainsCycle",
        6 => "HostUnreachable",
        7 => "HostNotFound",
        8 => "UnknownError",
        9 => "FailedToParse",
        10 => "CannotMutateObject",
        11 => "UserNotFound",
        12 => "UnsupportedFormat",
        13 => "Unauthorized",
        14 => "TypeMismatch",
        15 => "Overflow",
        16 => "InvalidLength",
        17 => "ProtocolError",
        18 => "AuthenticationFailed",
        20 => "IllegalOperation",
        22 => "InvalidBSON",
        26 => "NamespaceNotFound",
        27 => "IndexNotFound",
        28 => "PathNotViable",
        40 => "ConflictingUpdateOperators",
        43 => "CursorNotFound",
        48 => "NamespaceExists",
        50 => "MaxTimeMSExpired",
        52 => "DollarPrefixedFieldName",
        56 => "EmptyFieldName",
        59 => "CommandNotFound",
        64 => "WriteConcernFailed",
        66 => "ImmutableField",
        67 => "CannotCreateIndex",
        68 => "IndexAlreadyExists",
        72 => "InvalidOptions",
        85 => "IndexOptionsConflict",
        86 => "IndexKeySpecsConflict",
        89 => "NetworkTimeout",
        91 => "ShutdownInProgress",
        96 => "OperationFailed",
        100 => "UnsatisfiableWriteConcern",
        112 => "WriteConflict",
        115 => "CommandNotSupported",
        121 => "DocumentValidationFailure",
        133 => "FailedToSatisfyReadPreference",
        166 => "CommandNotSupportedOnView",
        189 => "PrimarySteppedDown",
        202 => "NetworkInterfaceExceededTimeLimit",
        251 => "NoSuchTransaction",
        256 => "TransactionCommitted",
        257 => "TransactionTooLarge",
        262 => "ExceededTimeLimit",
        263 => "OperationNotSupportedInTransaction",
        9001 => "SocketException",
        10107 => "NotWritablePrimary",
        10334 => "BSONObjectTooLarge",
        11000 => "DuplicateKey",
        11001 => "DuplicateKeyUpdate",
        11600 => "InterruptedAtShutdown",
        11601 => "Interrupted",
        11602 => "InterruptedDueToReplStateChange",
        13435 => "NotPrimaryNoSecondaryOk",
        13436 => "NotPrimaryOrSecondary",
        _ => return None,
    })
}
