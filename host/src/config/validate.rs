//! What serde cannot check: plugin names, identifiers, keys and ranges.
//! Each finding names its JSON path.

use std::collections::{BTreeSet, HashMap, hash_map::Entry};

use super::{Config, MappingConfig, fold_name};

fn invalid(path: impl Into<String>, message: impl Into<String>) -> (String, String) {
    (path.into(), message.into())
}

/// Checks what serde cannot: names, keys and ranges.
pub(super) fn validate(config: &Config) -> Result<(), (String, String)> {
    match config.database.get("type") {
        None => {
            return Err(invalid(
                "database.type",
                "missing: set it to sqlite, mysql, sqlserver, oracle, or your own plugin's name",
            ));
        }
        Some(serde_json::Value::String(t)) if is_plugin_name(t) => {}
        Some(other) => {
            return Err(invalid(
                "database.type",
                format!(
                    "expected a plugin name made of lowercase letters, digits and _ (sqlite, mysql, sqlserver, oracle), found {other}"
                ),
            ));
        }
    }
    if config.server.max_body_bytes == 0 {
        return Err(invalid("server.max_body_bytes", "must be greater than 0"));
    }
    if !(1..=128).contains(&config.server.max_json_depth) {
        return Err(invalid("server.max_json_depth", "must be between 1 and 128"));
    }
    if config.server.max_json_members == 0 {
        return Err(invalid("server.max_json_members", "must be greater than 0"));
    }
    for (setting, value) in [
        ("journal.max_bytes", config.journal.max_bytes),
        ("journal.max_unmapped_bytes", config.journal.max_unmapped_bytes),
        ("journal.max_unmapped_bytes_per_type", config.journal.max_unmapped_bytes_per_type),
    ] {
        if value < 1 << 20 {
            return Err(invalid(setting, "must be at least 1048576 (1 MiB)"));
        }
    }
    if config.server.max_json_nodes == 0 {
        return Err(invalid("server.max_json_nodes", "must be greater than 0"));
    }
    if config.server.bytes_in_flight() < config.server.max_body_bytes {
        return Err(invalid(
            "server.max_bytes_in_flight",
            format!(
                "must be at least server.max_body_bytes ({}), or no body of the largest size could ever be read",
                config.server.max_body_bytes
            ),
        ));
    }
    if !(1..=366).contains(&config.server.duplicate_window_days) {
        return Err(invalid("server.duplicate_window_days", "must be between 1 and 366"));
    }
    if config.server.delivery_id_field.as_deref().is_some_and(|f| f.trim().is_empty()) {
        return Err(invalid("server.delivery_id_field", "is empty: name the event field that holds the delivery id"));
    }
    if let Some(auth) = &config.server.auth {
        if auth.webhook_secrets.is_empty() && auth.bearer_tokens.is_empty() {
            return Err(invalid("server.auth", "names no webhook_secrets and no bearer_tokens"));
        }
        for (i, secret) in auth.webhook_secrets.iter().enumerate() {
            if super::decode_secret(secret).is_none() {
                return Err(invalid(
                    format!("server.auth.webhook_secrets[{i}]"),
                    "is not a Standard Webhooks secret: expected whsec_ followed by base64",
                ));
            }
        }
        for (i, token) in auth.bearer_tokens.iter().enumerate() {
            if token.len() < 16 {
                return Err(invalid(format!("server.auth.bearer_tokens[{i}]"), "is shorter than 16 characters"));
            }
        }
        if !(1..=3600).contains(&auth.timestamp_tolerance_secs) {
            return Err(invalid("server.auth.timestamp_tolerance_secs", "must be between 1 and 3600"));
        }
    } else if !config.server.listen.ip().is_loopback() && !config.server.allow_unauthenticated {
        return Err(invalid(
            "server.listen",
            format!(
                "{} is not a loopback address and server.auth is not set: anyone who reaches the port could write \
                 into the HIS. Set server.auth.webhook_secrets (or bearer_tokens), or set \
                 server.allow_unauthenticated to true on a network nothing untrusted can reach",
                config.server.listen
            ),
        ));
    }
    if !(1..=600).contains(&config.server.request_timeout_secs) {
        return Err(invalid("server.request_timeout_secs", "must be between 1 and 600"));
    }
    if !(1..=600).contains(&config.server.idle_timeout_secs) {
        return Err(invalid("server.idle_timeout_secs", "must be between 1 and 600"));
    }
    if config.server.admin_listen == config.server.listen && config.server.listen.port() != 0 {
        return Err(invalid(
            "server.admin_listen",
            format!(
                "is the same address as server.listen ({}): give the operator's routes a port of their own \
                 (the default is 127.0.0.1:5001), or set server.operator_routes_on_intake_port",
                config.server.listen
            ),
        ));
    }
    if !(1..=100_000).contains(&config.server.max_connections) {
        return Err(invalid("server.max_connections", "must be between 1 and 100000"));
    }
    if config.server.max_connections_per_client == 0 {
        return Err(invalid("server.max_connections_per_client", "must be at least 1"));
    }
    if let Some(limit) = &config.server.rate_limit {
        if !(0.001..=1_000_000.0).contains(&limit.requests_per_second) {
            return Err(invalid("server.rate_limit.requests_per_second", "must be between 0.001 and 1000000"));
        }
        if limit.burst == 0 {
            return Err(invalid("server.rate_limit.burst", "must be at least 1"));
        }
    }
    if config.server.admin_token.as_deref().is_some_and(|t| t.len() < 16) {
        return Err(invalid("server.admin_token", "is shorter than 16 characters: use a long random token"));
    }
    if !(1..=3650).contains(&config.journal.retention_days) {
        return Err(invalid("journal.retention_days", "must be between 1 and 3650"));
    }
    if config.sync.batch_size == 0 {
        return Err(invalid("sync.batch_size", "must be greater than 0"));
    }
    if !(1.0..=10.0).contains(&config.sync.retry_factor) {
        return Err(invalid("sync.retry_factor", "must be between 1.0 and 10.0"));
    }
    if !(1..=3_600_000).contains(&config.sync.retry_initial_delay_ms) {
        return Err(invalid("sync.retry_initial_delay_ms", "must be between 1 and 3600000 (one hour)"));
    }
    if !(1..=86_400).contains(&config.sync.retry_max_delay_secs) {
        return Err(invalid("sync.retry_max_delay_secs", "must be between 1 and 86400 (one day)"));
    }
    if !(1..=86_400).contains(&config.sync.plugin_call_timeout_secs) {
        return Err(invalid("sync.plugin_call_timeout_secs", "must be between 1 and 86400 (one day)"));
    }
    // The mappings seen so far by folded table, with their key columns.
    let mut tables: HashMap<String, (&str, &MappingConfig, BTreeSet<String>)> = HashMap::new();
    for (event_type, event) in &config.mapping {
        if event.targets.is_empty() {
            return Err(invalid(format!("mapping.{event_type}"), "lists no targets: give at least one"));
        }
        check_targets(event_type, event)?;
        for (at, mapping) in event.targets_at(event_type) {
            check_identifier(&format!("{at}.table"), &mapping.table)?;
            if mapping.fields.is_empty() && mapping.columns.is_empty() {
                return Err(invalid(format!("{at}.fields"), "maps no fields: add at least the key field"));
            }
            let mut columns = std::collections::HashSet::new();
            let named = mapping
                .fields
                .iter()
                .map(|(field, column)| (format!("{at}.fields.{field}"), column))
                .chain(mapping.columns.keys().map(|column| (format!("{at}.columns.{column}"), column)));
            for (path, column) in named {
                check_identifier(&path, column)?;
                if !columns.insert(column.to_lowercase()) {
                    return Err(invalid(path, format!("column {column:?} is mapped twice")));
                }
            }
            match &mapping.key {
                Some(key) if key.is_empty() => {
                    return Err(invalid(format!("{at}.key"), "is empty: name the event field(s) that identify a row"));
                }
                Some(key) => {
                    for (i, field) in key.iter().enumerate() {
                        if !mapping.fields.contains_key(field) && !mapping.columns.contains_key(field) {
                            return Err(invalid(
                                format!("{at}.key[{i}]"),
                                format!(
                                    "{field:?} is neither a mapped field of {at}.fields nor a column of {at}.columns"
                                ),
                            ));
                        }
                    }
                }
                None if !mapping.fields.keys().any(|f| f.ends_with("_id")) => {
                    return Err(invalid(
                        format!("{at}.key"),
                        "no key: no mapped field ends in _id, so add \"key\": [\"<field>\"] naming the event field(s) (or the columns of columns) that identify the HIS row",
                    ));
                }
                None => {}
            }
            check_action(&at, mapping)?;
            // An event's row key is its table and its key's values
            // (mapping/key.rs): two mappings of one table with other key
            // columns would give one HIS row two keys, and a held event would
            // not hold the other mapping's events for that row.
            let columns: BTreeSet<String> = key_columns(mapping).iter().map(|column| fold_name(column)).collect();
            match tables.entry(fold_name(&mapping.table)) {
                Entry::Vacant(entry) => {
                    entry.insert((event_type, mapping, columns));
                }
                Entry::Occupied(entry) if entry.get().2 != columns => {
                    let (first_type, first, _) = entry.get();
                    return Err(invalid(
                        format!("{at}.key"),
                        other_key_columns(event_type, mapping, first_type, first),
                    ));
                }
                Entry::Occupied(_) => {}
            }
        }
    }
    Ok(())
}

/// A `when` has exactly one operator. The targets of one event type may
/// write other tables, or other rows of one table (each its own row key,
/// mapping/key.rs); every mapping of one table keys it by the same
/// columns, which the caller checks across event types.
fn check_targets(event_type: &str, event: &super::EventConfig) -> Result<(), (String, String)> {
    for (at, target) in event.targets_at(event_type) {
        if let Some(when) = &target.when {
            let operators = [
                when.equals.is_some(),
                when.not_equals.is_some(),
                when.one_of.is_some(),
                when.not_in.is_some(),
                when.exists.is_some(),
            ];
            if operators.iter().filter(|o| **o).count() != 1 {
                return Err(invalid(
                    format!("{at}.when"),
                    "give exactly one of equals, not_equals, in, not_in and exists",
                ));
            }
        }
    }
    Ok(())
}

/// `action`, `if_missing` and `on_missing` fit together.
fn check_action(at: &str, mapping: &MappingConfig) -> Result<(), (String, String)> {
    use super::{ActionConfig, OnMissing};
    if mapping.if_missing.is_some() && mapping.action != ActionConfig::Update {
        return Err(invalid(
            format!("{at}.if_missing"),
            "applies only to \"action\": \"update\"; remove it, or set the action to update",
        ));
    }
    let keys = mapping.key_fields();
    let others = mapping.fields.keys().chain(mapping.columns.keys()).filter(|f| !keys.contains(f)).count();
    match mapping.action {
        ActionConfig::SoftDelete if others == 0 => Err(invalid(
            format!("{at}.fields"),
            "a soft_delete sets the mapped columns other than the key (such as a status or a deletion time); \
             map at least one field besides the key",
        )),
        ActionConfig::Delete if mapping.on_missing == OnMissing::Keep => Err(invalid(
            format!("{at}.on_missing"),
            "a delete uses the key fields only, so \"keep\" means nothing here; remove it",
        )),
        _ => Ok(()),
    }
}

/// The HIS columns of a mapping's key, as written.
fn key_columns(mapping: &MappingConfig) -> Vec<&str> {
    mapping
        .key_fields()
        .iter()
        .filter_map(|name| {
            mapping
                .fields
                .get(name)
                .map(String::as_str)
                .or_else(|| mapping.columns.get_key_value(name).map(|(c, _)| c.as_str()))
        })
        .collect()
}

/// Why `event_type`'s mapping may not key `mapping.table` otherwise than
/// `first_type`'s does, and what to set.
fn other_key_columns(event_type: &str, mapping: &MappingConfig, first_type: &str, first: &MappingConfig) -> String {
    let listed = |m: &MappingConfig| {
        let default = if m.key.is_none() { " (no key set: the first mapped field ending in _id)" } else { "" };
        format!("[{}]{default}", key_columns(m).join(", "))
    };
    let spelled = if first.table == mapping.table { String::new() } else { format!(" (as {})", first.table) };
    format!(
        "keys the table {} by {}, but mapping.{first_type} writes that table too{spelled}, keyed by {}. \
         Every mapping of one table must use the same key columns, or one HIS row gets two event keys and its events \
         may be written out of order: set mapping.{event_type}.key to the field(s) mapped to {}",
        mapping.table,
        listed(mapping),
        listed(first),
        key_columns(first).join(", ")
    )
}

fn is_plugin_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A table or column name: it is quoted by each plugin, but must still be a
/// plain name.
fn check_identifier(path: &str, name: &str) -> Result<(), (String, String)> {
    if name.trim().is_empty() {
        return Err(invalid(path, "is empty: expected a table or column name"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid(path, format!("{name:?} contains a control character")));
    }
    Ok(())
}
