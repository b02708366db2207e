//! SQLite errors: extended result codes to [`Error`] kinds, named in the
//! message (`SQLITE_CONSTRAINT_NOTNULL (1299)`).

use persistence_core::Error;
use persistence_core::error::Stage;

/// The name of an SQLite (extended) result code.
pub(crate) fn sqlite_code_name(code: i32) -> Option<&'static str> {
    Some(match code {
        1 => "SQLITE_ERROR",
        2 => "SQLITE_INTERNAL",
        3 => "SQLITE_PERM",
        4 => "SQLITE_ABORT",
        5 => "SQLITE_BUSY",
        6 => "SQLITE_LOCKED",
        7 => "SQLITE_NOMEM",
        8 => "SQLITE_READONLY",
        9 => "SQLITE_INTERRUPT",
        10 => "SQLITE_IOERR",
        11 => "SQLITE_CORRUPT",
        12 => "SQLITE_NOTFOUND",
        13 => "SQLITE_FULL",
        14 => "SQLITE_CANTOPEN",
        15 => "SQLITE_PROTOCOL",
        16 => "SQLITE_EMPTY",
        17 => "SQLITE_SCHEMA",
        18 => "SQLITE_TOOBIG",
        19 => "SQLITE_CONSTRAINT",
        20 => "SQLITE_MISMATCH",
        21 => "SQLITE_MISUSE",
        22 => "SQLITE_NOLFS",
        23 => "SQLITE_AUTH",
        24 => "SQLITE_FORMAT",
        25 => "SQLITE_RANGE",
        26 => "SQLITE_NOTADB",
        257 => "SQLITE_ERROR_MISSING_COLLSEQ",
        513 => "SQLITE_ERROR_RETRY",
        769 => "SQLITE_ERROR_SNAPSHOT",
        261 => "SQLITE_BUSY_RECOVERY",
        517 => "SQLITE_BUSY_SNAPSHOT",
        773 => "SQLITE_BUSY_TIMEOUT",
        262 => "SQLITE_LOCKED_SHAREDCACHE",
        518 => "SQLITE_LOCKED_VTAB",
        264 => "SQLITE_READONLY_RECOVERY",
        520 => "SQLITE_READONLY_CANTLOCK",
        776 => "SQLITE_READONLY_ROLLBACK",
        1032 => "SQLITE_READONLY_DBMOVED",
        1288 => "SQLITE_READONLY_CANTINIT",
        1544 => "SQLITE_READONLY_DIRECTORY",
        266 => "SQLITE_IOERR_READ",
        522 => "SQLITE_IOERR_SHORT_READ",
        778 => "SQLITE_IOERR_WRITE",
        1034 => "SQLITE_IOERR_FSYNC",
        1290 => "SQLITE_IOERR_DIR_FSYNC",
        1546 => "SQLITE_IOERR_TRUNCATE",
        1802 => "SQLITE_IOERR_FSTAT",
        2058 => "SQLITE_IOERR_UNLOCK",
        2314 => "SQLITE_IOERR_RDLOCK",
        2570 => "SQLITE_IOERR_DELETE",
        3082 => "SQLITE_IOERR_NOMEM",
        3338 => "SQLITE_IOERR_ACCESS",
        3850 => "SQLITE_IOERR_LOCK",
        4106 => "SQLITE_IOERR_CLOSE",
        4618 => "SQLITE_IOERR_SHMOPEN",
        4874 => "SQLITE_IOERR_SHMSIZE",
        5386 => "SQLITE_IOERR_SHMMAP",
        5642 => "SQLITE_IOERR_SEEK",
        6154 => "SQLITE_IOERR_MMAP",
        8202 => "SQLITE_IOERR_DATA",
        8458 => "SQLITE_IOERR_CORRUPTFS",
        270 => "SQLITE_CANTOPEN_NOTEMPDIR",
        526 => "SQLITE_CANTOPEN_ISDIR",
        782 => "SQLITE_CANTOPEN_FULLPATH",
        1038 => "SQLITE_CANTOPEN_CONVPATH",
        1550 => "SQLITE_CANTOPEN_SYMLINK",
        267 => "SQLITE_CORRUPT_VTAB",
        523 => "SQLITE_CORRUPT_SEQUENCE",
        779 => "SQLITE_CORRUPT_INDEX",
        516 => "SQLITE_ABORT_ROLLBACK",
        275 => "SQLITE_CONSTRAINT_CHECK",
        531 => "SQLITE_CONSTRAINT_COMMITHOOK",
        787 => "SQLITE_CONSTRAINT_FOREIGNKEY",
        1043 => "SQLITE_CONSTRAINT_FUNCTION",
        1299 => "SQLITE_CONSTRAINT_NOTNULL",
        1555 => "SQLITE_CONSTRAINT_PRIMARYKEY",
        1811 => "SQLITE_CONSTRAINT_TRIGGER",
        2067 => "SQLITE_CONSTRAINT_UNIQUE",
        2323 => "SQLITE_CONSTRAINT_VTAB",
        2579 => "SQLITE_CONSTRAINT_ROWID",
        2835 => "SQLITE_CONSTRAINT_PINNED",
        3091 => "SQLITE_CONSTRAINT_DATATYPE",
        _ => return None,
    })
}

/// Classify an SQLite extended result code; `message` is SQLite's own text
/// (it names tables, columns and constraints, never a bound value).
pub(crate) fn map_sqlite(code: i32, message: &str) -> (Error, Stage) {
    let name = match sqlite_code_name(code) {
        Some(n) => format!("{n} ({code})"),
        None => format!("SQLite result code {code}"),
    };
    let said = |what: &str| format!("{name}: {what} ({message})");
    let rejected = |e: Error| (e, Stage::Rejected);
    let primary = code & 0xff;
    match code {
        1555 => rejected(Error::duplicate_id(said("an entity with this id exists"))),
        2067 => rejected(Error::unique_violation(
            None,
            said("another row holds this value"),
        )),
        1299 => rejected(Error::invalid_input(said(
            "a required value is missing (NOT NULL)",
        ))),
        275 => rejected(Error::invalid_input(said(
            "the row fails a check constraint",
        ))),
        787 => rejected(Error::invalid_input(said(
            "a referenced row does not exist, or the row is still referenced",
        ))),
        3091 => rejected(Error::invalid_input(said(
            "a value has the wrong type for its STRICT column",
        ))),
        1811 => rejected(Error::invalid_input(said("a trigger refused the row"))),
        2579 => rejected(Error::invalid_input(said("the rowid is invalid"))),
        _ => match primary {
            19 | 20 | 25 | 18 => rejected(Error::invalid_input(said(match primary {
                18 => "a string or blob is too big",
                20 => "a value has the wrong type",
                25 => "a bound parameter index is out of range",
                _ => "a constraint failed",
            }))),
            5 | 6 => rejected(Error::concurrent(said(
                "the database is busy or locked by another connection; retry",
            ))),
            9 => rejected(Error::timeout(said("the statement was interrupted"))),
            // The write may have reached the file before the I/O error.
            10 => (
                Error::unavailable(said("disk I/O error on the database file")),
                Stage::InFlight,
            ),
            14 => (
                Error::unavailable(said("cannot open the database file")),
                Stage::NotSent,
            ),
            13 => rejected(Error::unavailable(said("the disk is full"))),
            3 | 8 | 23 => rejected(Error::config(said(
                "not allowed (read-only database file, or no permission)",
            ))),
            11 | 26 => rejected(Error::backend(said(
                "the database file is corrupt or not a database",
            ))),
            17 => rejected(Error::concurrent(said(
                "the schema changed while the statement ran; retry",
            ))),
            _ => rejected(Error::backend(format!("{name}: {message}"))),
        },
    }
}
