//! The `CREATE TABLE`s the kit prints for its two tables, which it never
//! creates itself: a real HIS is never altered by a test tool.

/// The `CREATE TABLE` for the kit's `table` in the dialect of
/// `database_type`, on one line. `id` is the key; every other column takes
/// NULL.
pub fn ddl(database_type: &str, table: &str) -> String {
    let (id, text, bool, int, decimal, float, timestamp, date, bytes) = match database_type {
        "sqlite" => ("INTEGER", "TEXT", "INTEGER", "INTEGER", "TEXT", "REAL", "TEXT", "TEXT", "BLOB"),
        "mysql" => (
            "BIGINT",
            "VARCHAR(100)",
            "BOOLEAN",
            "BIGINT",
            "DECIMAL(12,2)",
            "DOUBLE",
            "DATETIME(3)",
            "DATE",
            "VARBINARY(100)",
        ),
        "sqlserver" => (
            "BIGINT",
            "NVARCHAR(100)",
            "BIT",
            "BIGINT",
            "DECIMAL(12,2)",
            "FLOAT",
            "DATETIME2",
            "DATE",
            "VARBINARY(100)",
        ),
        // The postgres plugin quotes names too; the kit's are lowercase, so
        // unquoted they fold to the same names.
        "postgres" => (
            "BIGINT",
            "VARCHAR(100)",
            "BOOLEAN",
            "BIGINT",
            "NUMERIC(12,2)",
            "DOUBLE PRECISION",
            "TIMESTAMP",
            "DATE",
            "BYTEA",
        ),
        // The oracle plugin quotes names, so they keep their lowercase.
        "oracle" => {
            return format!(
                "CREATE TABLE \"{table}\" (\"id\" NUMBER(19) PRIMARY KEY, \"label\" VARCHAR2(100), \"flag\" NUMBER(1), \
                 \"quantity\" NUMBER(19), \"amount\" NUMBER(12,2), \"ratio\" BINARY_DOUBLE, \
                 \"happened_at\" TIMESTAMP, \"note\" VARCHAR2(100), \"born_on\" DATE, \"photo\" RAW(100))"
            );
        }
        _ => {
            return format!(
                "a table {table} with columns id (64-bit integer, primary key), label (text, 100), flag (boolean), \
                 quantity (64-bit integer), amount (decimal 12,2), ratio (double), happened_at (date and time), \
                 note (text, 100), born_on (date), photo (bytes, 100), all but id nullable"
            );
        }
    };
    format!(
        "CREATE TABLE {table} (id {id} PRIMARY KEY, label {text}, flag {bool}, quantity {int}, amount {decimal}, \
         ratio {float}, happened_at {timestamp}, note {text}, born_on {date}, photo {bytes})"
    )
}

/// The `CREATE TABLE` for the kit's values table (`table` is its whole
/// name, such as `buktor_conformance_values`), on one line.
///
/// Its primary key is every column but `label`: the kit observes how a
/// timestamp, a decimal or a date was stored by whether a second value
/// collides with the first as the same key. The columns take the HIS's
/// own types (a date-time without zone, DECIMAL(38,2), DATE), because a
/// plugin's conversions are what is checked; SQLite has none, and stores
/// the text it is given.
pub fn values_ddl(database_type: &str, table: &str) -> String {
    let (kind, timestamp, decimal, date, text) = match database_type {
        "sqlite" => ("TEXT", "TEXT", "TEXT", "TEXT", "TEXT"),
        "mysql" => ("VARCHAR(20)", "DATETIME(3)", "DECIMAL(38,2)", "DATE", "VARCHAR(100)"),
        "sqlserver" => ("NVARCHAR(20)", "DATETIME2", "DECIMAL(38,2)", "DATE", "NVARCHAR(100)"),
        "postgres" => ("VARCHAR(20)", "TIMESTAMP", "NUMERIC(38,2)", "DATE", "VARCHAR(100)"),
        "oracle" => {
            return format!(
                "CREATE TABLE \"{table}\" (\"kind\" VARCHAR2(20) NOT NULL, \"happened_at\" TIMESTAMP NOT NULL, \
                 \"amount\" NUMBER(38,2) NOT NULL, \"born_on\" DATE NOT NULL, \"label\" VARCHAR2(100), \
                 PRIMARY KEY (\"kind\", \"happened_at\", \"amount\", \"born_on\"))"
            );
        }
        _ => {
            return format!(
                "a table {table} with columns kind (text, 20), happened_at (date and time, no time zone), amount \
                 (decimal 38,2), born_on (date), label (text, 100, nullable), primary key (kind, happened_at, \
                 amount, born_on)"
            );
        }
    };
    format!(
        "CREATE TABLE {table} (kind {kind} NOT NULL, happened_at {timestamp} NOT NULL, amount {decimal} NOT NULL, \
         born_on {date} NOT NULL, label {text}, PRIMARY KEY (kind, happened_at, amount, born_on))"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATABASES: [&str; 6] = ["sqlite", "mysql", "sqlserver", "oracle", "postgres", "acme"];

    #[test]
    fn ddl_names_every_column_the_kit_writes() {
        for database_type in DATABASES {
            let text = ddl(database_type, "buktor_conformance");
            for column in
                ["id", "label", "flag", "quantity", "amount", "ratio", "happened_at", "note", "born_on", "photo"]
            {
                assert!(text.contains(column), "{database_type}: {column} in {text}");
            }
            assert!(!text.contains('\n'), "one line: {text}");
        }
    }

    #[test]
    fn the_values_table_is_keyed_by_every_value_it_checks() {
        for database_type in DATABASES {
            let text = values_ddl(database_type, "buktor_conformance_values");
            assert!(text.contains("buktor_conformance_values"), "{text}");
            for column in ["kind", "happened_at", "amount", "born_on", "label"] {
                assert!(text.contains(column), "{database_type}: {column} in {text}");
            }
            assert!(text.to_lowercase().contains("primary key (") && !text.contains('\n'), "{text}");
        }
        assert!(values_ddl("mysql", "t").contains("DECIMAL(38,2)"), "38 digits");
        assert!(values_ddl("postgres", "t").contains("NUMERIC(38,2)"), "38 digits");
    }

    #[test]
    fn postgres_gets_its_own_types() {
        assert_eq!(
            ddl("postgres", "t"),
            "CREATE TABLE t (id BIGINT PRIMARY KEY, label VARCHAR(100), flag BOOLEAN, quantity BIGINT, \
             amount NUMERIC(12,2), ratio DOUBLE PRECISION, happened_at TIMESTAMP, note VARCHAR(100), \
             born_on DATE, photo BYTEA)"
        );
        assert_eq!(
            values_ddl("postgres", "t_values"),
            "CREATE TABLE t_values (kind VARCHAR(20) NOT NULL, happened_at TIMESTAMP NOT NULL, \
             amount NUMERIC(38,2) NOT NULL, born_on DATE NOT NULL, label VARCHAR(100), \
             PRIMARY KEY (kind, happened_at, amount, born_on))"
        );
    }
}
