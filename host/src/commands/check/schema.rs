//! Each mapping against the table the plugin describes: names (exact,
//! else regardless of case), the key, NOT NULL columns, and the type
//! heuristic (see the module above for the rules).

use std::collections::BTreeSet;

use his_plugin_api::{ColumnDescription, TableDescription};

use super::report::Finding;
use buktor_middleware::{
    config::LoadedConfig,
    pipeline::mapping::{EventMapping, source::Source, transform::text_of},
};

/// What the mapping checks need to know of the HIS besides its tables.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target<'a> {
    /// `database.type`.
    database_type: &'a str,
    /// `database.create_missing` is true: the writer creates missing
    /// tables, columns and key indexes.
    create_missing: bool,
}

impl<'a> Target<'a> {
    pub(super) fn of(loaded: &'a LoadedConfig) -> Self {
        Self {
            database_type: loaded.database_type(),
            create_missing: loaded.config.database.get("create_missing") == Some(&serde_json::Value::Bool(true)),
        }
    }

    /// Whether a table name that differs only in case can fail.
    fn table_case_matters(&self) -> bool {
        self.database_type == "mysql"
    }

    /// Whether text is a right column type for timestamps.
    fn text_holds_timestamps(&self) -> bool {
        self.database_type == "sqlite"
    }
}

/// A name among the HIS's names: see "Names" in the module documentation.
#[derive(Debug, PartialEq)]
enum Match<'a> {
    /// The same name.
    Exact(&'a str),
    /// The one name that differs only in case.
    CaseOnly(&'a str),
    /// Several names that differ from it, and each other, only in case.
    Ambiguous(Vec<&'a str>),
    /// None.
    Missing,
}

impl<'a> Match<'a> {
    fn name(&self) -> Option<&'a str> {
        match self {
            Match::Exact(name) | Match::CaseOnly(name) => Some(name),
            _ => None,
        }
    }
}

fn match_name<'a>(wanted: &str, names: impl Iterator<Item = &'a str> + Clone) -> Match<'a> {
    if let Some(exact) = names.clone().find(|name| *name == wanted) {
        return Match::Exact(exact);
    }
    let mut folded: Vec<&str> = names.filter(|name| name.eq_ignore_ascii_case(wanted)).collect();
    match folded.len() {
        0 => Match::Missing,
        1 => Match::CaseOnly(folded.remove(0)),
        _ => Match::Ambiguous(folded),
    }
}

/// What a field carries, by its name, as far as `check` guesses.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Carries {
    /// ISO 8601 timestamps.
    Timestamps,
    /// Amounts of money.
    Amounts,
}

fn carries(field: &str) -> Option<Carries> {
    if field.ends_with("_at") {
        Some(Carries::Timestamps)
    } else if field == "amount" || field.ends_with("_amount") {
        Some(Carries::Amounts)
    } else {
        None
    }
}

/// A column type, coarsely.
#[derive(Debug, Clone, Copy, PartialEq)]
enum TypeClass {
    DateTime,
    Text,
    Number,
    /// No declared type (SQLite): anything goes.
    Untyped,
    Other,
}

fn type_class(data_type: &str) -> TypeClass {
    let t = data_type.trim().to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| t.contains(n));
    if t.is_empty() {
        TypeClass::Untyped
    } else if has(&["interval", "point"]) {
        TypeClass::Other
    } else if has(&["date", "time"]) {
        TypeClass::DateTime
    } else if has(&["char", "text", "clob"]) {
        TypeClass::Text
    } else if has(&["int", "dec", "num", "float", "doub", "real", "money"]) {
        TypeClass::Number
    } else {
        TypeClass::Other
    }
}

/// A warning when `column`'s type does not suit what `field` carries.
fn type_warning(path: &str, field: &str, column: &ColumnDescription, target: &Target<'_>) -> Option<Finding> {
    let class = type_class(&column.data_type);
    let (name, data_type) = (column.name.as_str(), column.data_type.as_str());
    match carries(field)? {
        Carries::Timestamps => {
            let fits = match class {
                TypeClass::DateTime | TypeClass::Untyped => true,
                TypeClass::Text => target.text_holds_timestamps(),
                _ => false,
            };
            let suggestion = if target.text_holds_timestamps() { "TEXT or DATETIME" } else { "DATETIME or TIMESTAMP" };
            (!fits).then(|| {
                Finding::warning(
                    path,
                    format!(
                        "field {field} is a time by its name (such as 2025-03-02T11:00:00), but column {name} is \
                         {data_type}, not a date/time column: the HIS may refuse the values, or keep them as \
                         something else"
                    ),
                    format!("map {field} to a {suggestion} column, or change the type of {name}"),
                )
            })
        }
        Carries::Amounts => (!matches!(class, TypeClass::Number | TypeClass::Untyped)).then(|| {
            Finding::warning(
                path,
                format!(
                    "field {field} is an amount by its name (such as 1500.75), but column {name} is {data_type}, \
                     not numeric: the HIS may refuse the values, or sort and add them up as text"
                ),
                format!("map {field} to a DECIMAL or NUMERIC column, or change the type of {name}"),
            )
        }),
    }
}

/// A map's or lookup's `default` that the column's type cannot take: text
/// that is not a number in a numeric column, or not a date in a date/time
/// column (SQLite's untyped and text columns take anything).
fn default_warning(source: &Source, column: &ColumnDescription) -> Option<Finding> {
    use his_plugin_api::ValueRef;
    let (n, default) = source.transforms().iter().enumerate().find_map(|(n, t)| Some((n, t.default_value()?)))?;
    let (name, data_type) = (column.name.as_str(), column.data_type.as_str());
    let fits = match (type_class(data_type), default.get()) {
        (_, ValueRef::Null) | (TypeClass::Untyped | TypeClass::Text | TypeClass::Other, _) => true,
        (TypeClass::Number, value) => matches!(value, ValueRef::Int(_) | ValueRef::Decimal(_) | ValueRef::Float(_)),
        (TypeClass::DateTime, value) => matches!(value, ValueRef::Timestamp(_) | ValueRef::Date(_)),
    };
    (!fits).then(|| {
        Finding::warning(
            format!("{}.transforms[{n}].default", source.at),
            format!(
                "the default {} is {}, but column {name} is {data_type}: the HIS would refuse it",
                text_of(default).unwrap_or_default(),
                default.kind().name()
            ),
            format!("give a default that column {name} takes, or \"on_miss\": \"fail\""),
        )
    })
}

/// `a, b, c` (at most 12, then how many more).
fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    let shown = names.iter().take(12).copied().collect::<Vec<_>>().join(", ");
    match names.len() {
        0 => "none".into(),
        n if n > 12 => format!("{shown} and {} more", n - 12),
        _ => shown,
    }
}

/// Whether the table's primary key or one of its unique keys is exactly
/// `columns` (in any order, regardless of case).
fn has_unique_key(table: &TableDescription, columns: &[&str]) -> bool {
    let wanted: BTreeSet<String> = columns.iter().map(|c| c.to_ascii_lowercase()).collect();
    std::iter::once(&table.primary_key)
        .chain(table.unique_keys.iter())
        .filter(|key| !key.is_empty())
        .any(|key| key.iter().map(|c| c.to_ascii_lowercase()).collect::<BTreeSet<_>>() == wanted)
}

/// The table's keys, for a message: `primary key (a); unique (b, c)`.
fn keys_of(table: &TableDescription) -> String {
    let mut keys = Vec::new();
    if !table.primary_key.is_empty() {
        keys.push(format!("primary key ({})", list(table.primary_key.iter().map(|c| c.as_str()))));
    }
    for key in table.unique_keys.iter() {
        keys.push(format!("unique ({})", list(key.iter().map(|c| c.as_str()))));
    }
    if keys.is_empty() {
        "it has no primary key and no unique index".into()
    } else {
        format!("its keys: {}", keys.join("; "))
    }
}

/// Every finding for one mapping, given what the plugin said of its table
/// (`None`: it does not exist). Pure: the plugin was asked before.
pub(super) fn check_mapping(
    mapping: &EventMapping,
    key_is_default: bool,
    table: Option<&TableDescription>,
    target: &Target<'_>,
) -> Vec<Finding> {
    let at = &mapping.at;
    let wanted = &mapping.table;
    let database_type = target.database_type;
    let Some(table) = table else {
        let fix = if target.create_missing {
            format!(
                "nothing, for a demo; with a real HIS, create {wanted} there and set database.create_missing to false"
            )
        } else {
            format!("create table {wanted} in the HIS, or correct {at}.table to the table's name")
        };
        let message = if target.create_missing {
            format!("table {wanted} does not exist yet: database.create_missing creates it at the first event")
        } else {
            format!("table {wanted} does not exist in the {database_type} HIS database (or this login cannot see it)")
        };
        return vec![Finding::missing(target.create_missing, format!("{at}.table"), message, fix)];
    };

    let mut findings = Vec::new();
    let stored = table.name.as_str();
    if stored != wanted && target.table_case_matters() {
        findings.push(Finding::warning(
            format!("{at}.table"),
            format!(
                "the table is {stored}, the mapping says {wanted}: MySQL compares table names with case where \
                 lower_case_table_names is 0 (the Linux default), and there every write would fail"
            ),
            format!("write \"table\": \"{stored}\" in {at}"),
        ));
    }

    let names = || table.columns.iter().map(|c| c.name.as_str());
    // The HIS column of each mapped field, when it has one.
    let mut found: Vec<Option<&ColumnDescription>> = Vec::new();
    for ((field, column), source) in mapping.fields.iter().zip(&mapping.columns).zip(&mapping.sources) {
        let path = source.at.clone();
        let matched = match_name(column, names());
        let description = matched.name().and_then(|name| table.columns.iter().find(|c| c.name.as_str() == name));
        found.push(description);
        match matched {
            Match::Exact(_) | Match::CaseOnly(_) => {
                findings.extend(description.and_then(|c| type_warning(&path, field, c, target)));
                findings.extend(description.and_then(|c| default_warning(source, c)));
            }
            Match::Ambiguous(several) => findings.push(Finding::error(
                path,
                format!(
                    "column {column} matches several columns of {stored} that differ only in case: {}",
                    list(several.into_iter())
                ),
                format!("write the exact name of one of them in {at}.fields"),
            )),
            Match::Missing if target.create_missing => findings.push(Finding::warning(
                path,
                format!(
                    "column {column} is not in table {stored} yet: database.create_missing adds it at the first event"
                ),
                format!("nothing, for a demo; with a real HIS, add {column} to {stored} there"),
            )),
            Match::Missing => findings.push(Finding::error(
                path,
                format!("column {column} is not in table {stored} (its columns: {})", list(names())),
                format!("add column {column} to {stored} in the HIS, or map {field} to one of its columns"),
            )),
        }
    }

    // The key, when all its columns exist (a missing one is reported above).
    let key_columns: Option<Vec<&str>> =
        mapping.key_indexes.iter().map(|index| found[*index].map(|c| c.name.as_str())).collect();
    if let Some(key_columns) = key_columns
        && !has_unique_key(table, &key_columns)
    {
        let key = key_columns.join(", ");
        let which = if key_is_default {
            format!("the key ({}, by default the first mapped field ending in _id)", mapping.key_fields.join(", "))
        } else {
            format!("the key ({})", mapping.key_fields.join(", "))
        };
        let (message, fix) = if target.create_missing {
            (
                format!(
                    "{which} has no primary key or unique index on ({key}) in {stored}: database.create_missing \
                     adds a unique index at the first event"
                ),
                format!("nothing, for a demo; with a real HIS, add a unique index on ({key}) to {stored} there"),
            )
        } else {
            (
                format!(
                    "{which} has no primary key or unique index on ({key}) in {stored} ({}): an upsert cannot find \
                     the row, so each event adds a duplicate row or is refused",
                    keys_of(table)
                ),
                format!(
                    "add a unique index on ({key}) to {stored} in the HIS, or set {at}.key to fields whose \
                     columns have one"
                ),
            )
        };
        findings.push(Finding::missing(target.create_missing, format!("{at}.key"), message, fix));
    }

    // NOT NULL columns without a default that no field writes.
    for column in table.columns.iter().filter(|c| !c.nullable && !c.has_default) {
        let name = column.name.as_str();
        if !mapping.columns.iter().any(|c| c.eq_ignore_ascii_case(name)) {
            findings.push(Finding::error(
                format!("{at}.fields"),
                format!(
                    "column {name} of {stored} is NOT NULL and has no default, and the mapping does not write it: \
                     the HIS refuses every new row"
                ),
                format!(
                    "map the event field that carries it (\"<field>\": \"{name}\" in {at}.fields), or give {name} \
                     a default in the HIS"
                ),
            ));
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use abi_stable::std_types::{RString, RVec};

    use buktor_middleware::{
        config::{self, ConfigError, Secrets},
        pipeline::mapping::Mappings,
    };
    use his_plugin_api::{ErrorKind, PluginError};

    use super::{
        super::{
            config_finding, his_finding,
            report::{PluginSummary, Report, Severity},
        },
        *,
    };

    const SQLITE: Target<'static> = Target { database_type: "sqlite", create_missing: false };
    const MYSQL: Target<'static> = Target { database_type: "mysql", create_missing: false };

    fn column(name: &str, data_type: &str, nullable: bool, has_default: bool) -> ColumnDescription {
        ColumnDescription { name: name.into(), data_type: data_type.into(), nullable, has_default }
    }

    fn table(
        name: &str,
        columns: Vec<ColumnDescription>,
        primary_key: &[&str],
        unique: &[&[&str]],
    ) -> TableDescription {
        let strings = |names: &[&str]| names.iter().map(|n| RString::from(*n)).collect::<RVec<_>>();
        TableDescription {
            name: name.into(),
            columns: columns.into(),
            primary_key: strings(primary_key),
            unique_keys: unique.iter().map(|k| strings(k)).collect(),
        }
    }

    fn mapping(json: &str) -> (EventMapping, bool) {
        let config =
            config::parse(&format!(r#"{{"database": {{"type": "sqlite"}}, "mapping": {{"payment": {json}}}}}"#))
                .expect("a valid mapping");
        let key_is_default = config.mapping["payment"].targets[0].key.is_none();
        (Mappings::new(&config.mapping).get("payment").unwrap().clone(), key_is_default)
    }

    fn paths(findings: &[Finding]) -> Vec<(Severity, &str)> {
        findings.iter().map(|f| (f.severity, f.path.as_str())).collect()
    }

    /// The seed's payment table as a real HIS would have it.
    fn payments() -> TableDescription {
        table(
            "HIS_payments",
            vec![
                column("HIS_payment_id", "INTEGER", false, true),
                column("HIS_amount", "DECIMAL(12,2)", true, false),
                column("HIS_payment_status", "TEXT", true, false),
                column("HIS_paid_at", "DATETIME", true, false),
                column("HIS_created", "TEXT", false, true),
            ],
            &["HIS_payment_id"],
            &[],
        )
    }

    const PAYMENT: &str = r#"{"table": "HIS_payments", "fields": {"payment_id": "HIS_payment_id",
        "amount": "HIS_amount", "status": "HIS_payment_status", "paid_at": "HIS_paid_at"}}"#;

    #[test]
    fn names_match_exactly_first_then_regardless_of_case() {
        let names = ["HIS_status", "his_STATUS", "Other", "a", "A"];
        let find = |wanted| match_name(wanted, names.iter().copied());
        assert_eq!(find("HIS_status"), Match::Exact("HIS_status"));
        assert_eq!(find("other"), Match::CaseOnly("Other"));
        assert_eq!(find("his_status"), Match::Ambiguous(vec!["HIS_status", "his_STATUS"]));
        assert_eq!(find("a"), Match::Exact("a"));
        assert_eq!(find("nope"), Match::Missing);
    }

    #[test]
    fn column_types_are_classified_across_dialects() {
        for (data_type, class) in [
            ("DATETIME", TypeClass::DateTime),
            ("datetime(3)", TypeClass::DateTime),
            ("timestamp", TypeClass::DateTime),
            ("TIMESTAMP(6) WITH TIME ZONE", TypeClass::DateTime),
            ("datetimeoffset", TypeClass::DateTime),
            ("DATE", TypeClass::DateTime),
            ("TEXT", TypeClass::Text),
            ("varchar(32)", TypeClass::Text),
            ("NVARCHAR2", TypeClass::Text),
            ("CLOB", TypeClass::Text),
            ("INTEGER", TypeClass::Number),
            ("bigint(20) unsigned", TypeClass::Number),
            ("decimal(12,2)", TypeClass::Number),
            ("NUMBER", TypeClass::Number),
            ("double precision", TypeClass::Number),
            ("money", TypeClass::Number),
            ("", TypeClass::Untyped),
            ("BLOB", TypeClass::Other),
            ("INTERVAL DAY(2) TO SECOND(6)", TypeClass::Other),
            ("point", TypeClass::Other),
        ] {
            assert_eq!(type_class(data_type), class, "{data_type}");
        }
    }

    #[test]
    fn field_names_say_what_they_carry() {
        assert_eq!(carries("received_at"), Some(Carries::Timestamps));
        assert_eq!(carries("updated_at"), Some(Carries::Timestamps));
        assert_eq!(carries("paid_at"), Some(Carries::Timestamps));
        assert_eq!(carries("amount"), Some(Carries::Amounts));
        assert_eq!(carries("refund_amount"), Some(Carries::Amounts));
        for other in ["status", "payment_id", "new_time", "attachment", "at", "amounts"] {
            assert_eq!(carries(other), None, "{other}");
        }
    }

    #[test]
    fn timestamps_want_a_date_column_and_amounts_a_numeric_one() {
        let warned = |field: &str, data_type: &str, target: &Target<'_>| {
            type_warning("p", field, &column("C", data_type, true, false), target).is_some()
        };
        assert!(!warned("paid_at", "DATETIME", &MYSQL));
        assert!(!warned("paid_at", "datetime(3)", &MYSQL));
        assert!(warned("paid_at", "varchar(32)", &MYSQL), "MySQL has date types: text is a warning");
        assert!(warned("paid_at", "bigint", &MYSQL));
        assert!(!warned("paid_at", "TEXT", &SQLITE), "SQLite keeps dates as ISO text");
        assert!(!warned("paid_at", "", &SQLITE));
        assert!(warned("paid_at", "INTEGER", &SQLITE));
        assert!(!warned("amount", "decimal(12,2)", &MYSQL));
        assert!(!warned("amount", "NUMERIC", &SQLITE));
        assert!(warned("amount", "TEXT", &SQLITE));
        assert!(warned("amount", "datetime", &MYSQL));
        assert!(!warned("status", "INTEGER", &SQLITE), "no guess about other fields");
    }

    #[test]
    fn a_matching_table_gives_no_findings() {
        let (payment, default_key) = mapping(PAYMENT);
        assert_eq!(check_mapping(&payment, default_key, Some(&payments()), &SQLITE), []);
        // Column names differ only in case: fine everywhere, also in MySQL.
        let (payment, _) = mapping(&PAYMENT.replace("HIS_payment_status", "his_PAYMENT_status"));
        assert_eq!(check_mapping(&payment, true, Some(&payments()), &MYSQL), []);
    }

    #[test]
    fn every_problem_of_a_mapping_is_found() {
        let mut table = payments();
        table.primary_key = RVec::new();
        table.unique_keys = vec![RVec::from(vec![RString::from("HIS_payment_id"), RString::from("HIS_amount")])].into();
        let mut columns = table.columns.to_vec();
        columns[3] = column("HIS_paid_at", "INTEGER", true, false);
        columns.push(column("HIS_currency", "TEXT", false, false));
        columns.push(column("HIS_branch", "TEXT", false, false));
        table.columns = columns.into();
        let (payment, default_key) = mapping(&PAYMENT.replace(r#""status""#, r#""room": "HIS_room", "status""#));
        let findings = check_mapping(&payment, default_key, Some(&table), &SQLITE);
        assert_eq!(
            paths(&findings),
            [
                (Severity::Error, "mapping.payment.fields.room"),
                (Severity::Warning, "mapping.payment.fields.paid_at"),
                (Severity::Error, "mapping.payment.key"),
                (Severity::Error, "mapping.payment.fields"),
                (Severity::Error, "mapping.payment.fields"),
            ],
            "{findings:#?}"
        );
        assert!(
            findings[0].message.contains("column HIS_room is not in table HIS_payments (its columns: HIS_payment_id")
        );
        assert!(findings[2].message.contains("no primary key or unique index on (HIS_payment_id)"), "{findings:#?}");
        assert!(findings[2].message.contains("its keys: unique (HIS_payment_id, HIS_amount)"), "{findings:#?}");
        assert!(findings[2].message.contains("by default the first mapped field ending in _id"), "{findings:#?}");
        assert!(findings[3].message.starts_with("column HIS_currency of HIS_payments is NOT NULL"));
        assert!(findings[4].message.starts_with("column HIS_branch of HIS_payments is NOT NULL"));
        assert!(findings.iter().all(|f| !f.fix.is_empty()));
    }

    #[test]
    fn a_missing_key_column_is_reported_once() {
        let (payment, _) = mapping(&PAYMENT.replace(r#""HIS_payment_id""#, r#""HIS_pay_id""#));
        let findings = check_mapping(&payment, true, Some(&payments()), &SQLITE);
        assert_eq!(paths(&findings), [(Severity::Error, "mapping.payment.fields.payment_id")]);
    }

    #[test]
    fn a_composite_key_matches_a_unique_index_in_any_order_and_case() {
        let (visit, default_key) = mapping(
            r#"{"table": "T", "fields": {"site": "A", "number": "B", "note": "C"}, "key": ["site", "number"]}"#,
        );
        assert!(!default_key);
        let columns =
            vec![column("a", "TEXT", false, false), column("b", "TEXT", false, false), column("c", "", true, false)];
        let described = table("T", columns.clone(), &[], &[&["c"], &["B", "A"]]);
        assert_eq!(check_mapping(&visit, default_key, Some(&described), &SQLITE), []);
        let described = table("T", columns, &["a"], &[]);
        let findings = check_mapping(&visit, default_key, Some(&described), &SQLITE);
        assert_eq!(paths(&findings), [(Severity::Error, "mapping.payment.key")]);
        assert!(findings[0].message.starts_with("the key (site, number) has no primary key or unique index on (a, b)"));
    }

    #[test]
    fn a_missing_table_is_an_error_and_case_matters_only_for_mysql_tables() {
        let (payment, _) = mapping(PAYMENT);
        let findings = check_mapping(&payment, true, None, &SQLITE);
        assert_eq!(paths(&findings), [(Severity::Error, "mapping.payment.table")]);
        assert!(findings[0].message.contains("table HIS_payments does not exist in the sqlite HIS database"));

        let mut lower = payments();
        lower.name = "his_payments".into();
        assert_eq!(check_mapping(&payment, true, Some(&lower), &SQLITE), []);
        let findings = check_mapping(&payment, true, Some(&lower), &MYSQL);
        assert_eq!(paths(&findings), [(Severity::Warning, "mapping.payment.table")]);
        assert!(findings[0].fix.contains(r#""table": "his_payments""#));
    }

    #[test]
    fn create_missing_turns_what_it_creates_into_warnings() {
        let demo = Target { database_type: "sqlite", create_missing: true };
        let (payment, _) = mapping(&PAYMENT.replace(r#""status""#, r#""room": "HIS_room", "status""#));
        let findings = check_mapping(&payment, true, None, &demo);
        assert_eq!(paths(&findings), [(Severity::Warning, "mapping.payment.table")]);
        let mut table = payments();
        table.primary_key = RVec::new();
        table.columns = table.columns.iter().cloned().chain([column("HIS_currency", "TEXT", false, false)]).collect();
        let findings = check_mapping(&payment, true, Some(&table), &demo);
        assert_eq!(
            paths(&findings),
            [
                (Severity::Warning, "mapping.payment.fields.room"),
                (Severity::Warning, "mapping.payment.key"),
                (Severity::Error, "mapping.payment.fields"),
            ],
            "it does not fix a NOT NULL column: {findings:#?}"
        );
    }

    #[test]
    fn the_report_is_one_aligned_line_per_finding_then_a_summary() {
        let mut report = Report { file: "/etc/his-config.json".into(), config_ok: true, ..Report::default() };
        report.plugin = Some(PluginSummary {
            name: "sqlite".into(),
            version: "0.1.0".into(),
            plugin_api: "1.0.0".into(),
            path: "libhis_sqlite.so".into(),
        });
        report.his_reachable = true;
        report.mappings_checked = 3;
        report.findings = vec![
            Finding::error("mapping.a.table", "table T does not exist", "create it"),
            Finding::warning("mapping.payment.fields.paid_at", "not a date\ncolumn", "change it"),
        ];
        report.finish(&Secrets::default());
        assert_eq!(
            report.to_string(),
            "error    mapping.a.table:                 table T does not exist — fix: create it\n\
             warning  mapping.payment.fields.paid_at:  not a date\\ncolumn — fix: change it\n\
             failed: 1 error, 1 warning; config /etc/his-config.json, plugin sqlite 0.1.0, HIS reachable, 3 mappings checked\n"
        );
        report.findings.remove(0);
        report.finish(&Secrets::default());
        assert!(report.ok && report.summary.starts_with("ok with 1 warning: config"), "{}", report.summary);
        report.findings.clear();
        report.mappings_checked = 1;
        report.finish(&Secrets::default());
        assert_eq!(
            report.to_string(),
            "ok: config /etc/his-config.json, plugin sqlite 0.1.0, HIS reachable, 1 mapping checked\n"
        );
    }

    #[test]
    fn config_errors_keep_their_json_path_and_say_how_to_fix() {
        let error = ConfigError::Invalid {
            file: "/etc/his-config.json".into(),
            json_path: "database.password".into(),
            message: "the environment variable HIS_PW is not set (the value is ${HIS_PW})".into(),
        };
        let finding = config_finding(&error);
        assert_eq!((finding.severity, finding.path.as_str()), (Severity::Error, "database.password"));
        assert!(finding.fix.starts_with("set the variable where check runs"), "{finding:?}");
    }

    #[test]
    fn plugin_messages_that_name_a_setting_are_found_there() {
        let error = PluginError::setting("path", "cannot open /x/his.db");
        let finding = his_finding("sqlite", "cannot be opened", &error);
        assert_eq!(finding.path, "database.path");
        assert_eq!(finding.message, "the sqlite HIS database cannot be opened: cannot open /x/his.db");
        let error = PluginError::permanent(ErrorKind::AUTH, "MySQL at u@h:3306/d: Access denied").with_code("1045");
        let finding = his_finding("mysql", "cannot be opened", &error);
        assert_eq!(finding.path, "database");
        assert_eq!(
            finding.message,
            "the mysql HIS database cannot be opened: MySQL at u@h:3306/d: Access denied (code 1045)"
        );
        assert!(finding.fix.contains("database.password"));
    }

    #[test]
    fn a_map_default_the_column_cannot_take_is_a_warning() {
        let (payment, _) = mapping(
            r#"{"table": "HIS_payments", "key": ["id"], "columns": {"id": "payment_id",
                "CODE": {"from": "status", "transforms": ["trim", {"map": {"paid": 1}, "default": "none"}]}}}"#,
        );
        let columns = vec![column("id", "INTEGER", false, false), column("CODE", "INTEGER", true, false)];
        let findings =
            check_mapping(&payment, false, Some(&table("HIS_payments", columns.clone(), &["id"], &[])), &SQLITE);
        assert_eq!(paths(&findings), [(Severity::Warning, "mapping.payment.columns.CODE.transforms[1].default")]);
        assert!(
            findings[0].message.starts_with("the default none is text, but column CODE is INTEGER"),
            "{}",
            findings[0].message
        );
        let text_columns = vec![column("id", "INTEGER", false, false), column("CODE", "TEXT", true, false)];
        assert_eq!(
            check_mapping(&payment, false, Some(&table("HIS_payments", text_columns, &["id"], &[])), &SQLITE),
            []
        );
    }
}
