//! Typed values in RPC parameters: TYPE_INFO and the value after it
//! (MS-TDS 2.2.5.4 data type definitions, 2.2.5.5 data type dependent
//! data streams), turned into [`Param`]s.

use chrono::{Duration, NaiveDate};

use super::{
    Param, ParamValue,
    wire::{Malformed, Parsed, Reader, utf16},
};

/// Data type codes (MS-TDS 2.2.5.4).
mod code {
    pub const NULL: u8 = 0x1F;
    pub const INT1: u8 = 0x30;
    pub const BIT: u8 = 0x32;
    pub const INT2: u8 = 0x34;
    pub const INT4: u8 = 0x38;
    pub const DATETIME4: u8 = 0x3A;
    pub const FLT4: u8 = 0x3B;
    pub const MONEY: u8 = 0x3C;
    pub const DATETIME: u8 = 0x3D;
    pub const FLT8: u8 = 0x3E;
    pub const MONEY4: u8 = 0x7A;
    pub const INT8: u8 = 0x7F;

    pub const GUID: u8 = 0x24;
    pub const INTN: u8 = 0x26;
    pub const BITN: u8 = 0x68;
    pub const DECIMALN: u8 = 0x6A;
    pub const NUMERICN: u8 = 0x6C;
    pub const FLTN: u8 = 0x6D;
    pub const MONEYN: u8 = 0x6E;
    pub const DATETIMN: u8 = 0x6F;
    pub const DATEN: u8 = 0x28;
    pub const TIMEN: u8 = 0x29;
    pub const DATETIME2N: u8 = 0x2A;
    pub const DATETIMEOFFSETN: u8 = 0x2B;

    pub const BIGVARBINARY: u8 = 0xA5;
    pub const BIGVARCHAR: u8 = 0xA7;
    pub const BIGBINARY: u8 = 0xAD;
    pub const BIGCHAR: u8 = 0xAF;
    pub const NVARCHAR: u8 = 0xE7;
    pub const NCHAR: u8 = 0xEF;

    pub const IMAGE: u8 = 0x22;
    pub const TEXT: u8 = 0x23;
    pub const NTEXT: u8 = 0x63;
    pub const SSVARIANT: u8 = 0x62;
    pub const XML: u8 = 0xF1;
}

/// A decoded TYPE_INFO.
#[derive(Debug, Clone, Copy)]
struct TypeInfo {
    code: u8,
    /// The fixed size, the maximum size, or the scale for time types.
    len: usize,
    precision: u8,
    scale: u8,
}

/// Size of the fixed-length types, or `None` for any other code.
fn fixed_size(code: u8) -> Option<usize> {
    Some(match code {
        code::NULL => 0,
        code::INT1 | code::BIT => 1,
        code::INT2 => 2,
        code::INT4 | code::DATETIME4 | code::FLT4 | code::MONEY4 => 4,
        code::MONEY | code::DATETIME | code::FLT8 | code::INT8 => 8,
        _ => return None,
    })
}

/// One RPC parameter: name, status flags, TYPE_INFO, value. The second
/// value is `true` when the parameter came as the untyped NULLTYPE, whose
/// type only the declaration string tells.
pub fn read_param(r: &mut Reader<'_>) -> Parsed<(Param, bool)> {
    let name = r.b_varchar()?;
    let _status = r.u8()?;
    let info = type_info(r)?;
    let value = value(r, &info).map_err(|Malformed(e)| Malformed(format!("parameter {name:?}: {e}")))?;
    Ok((Param { name, sql_type: sql_type(&info), value }, info.code == code::NULL))
}

fn type_info(r: &mut Reader<'_>) -> Parsed<TypeInfo> {
    let code = r.u8()?;
    let mut info = TypeInfo { code, len: 0, precision: 0, scale: 0 };
    if let Some(size) = fixed_size(code) {
        info.len = size;
        return Ok(info);
    }
    match code {
        code::GUID | code::INTN | code::BITN | code::FLTN | code::MONEYN | code::DATETIMN => {
            info.len = r.u8()? as usize;
        }
        code::DECIMALN | code::NUMERICN => {
            info.len = r.u8()? as usize;
            info.precision = r.u8()?;
            info.scale = r.u8()?;
        }
        code::DATEN => info.len = 3,
        code::TIMEN | code::DATETIME2N | code::DATETIMEOFFSETN => {
            info.scale = r.u8()?;
            if info.scale > 7 {
                return Err(Malformed(format!("time scale {} is above 7", info.scale)));
            }
        }
        code::BIGVARBINARY | code::BIGBINARY => info.len = r.u16()? as usize,
        code::BIGVARCHAR | code::BIGCHAR | code::NVARCHAR | code::NCHAR => {
            info.len = r.u16()? as usize;
            r.take(5)?; // collation
        }
        code::IMAGE => info.len = r.u32()? as usize,
        code::TEXT | code::NTEXT => {
            info.len = r.u32()? as usize;
            r.take(5)?; // collation
        }
        code::SSVARIANT => info.len = r.u32()? as usize,
        code::XML => {
            if r.u8()? != 0 {
                r.b_varchar()?; // database
                r.b_varchar()?; // owning schema
                r.us_varchar()?; // schema collection
            }
        }
        other => return Err(Malformed(format!("unsupported data type 0x{other:02X}"))),
    }
    Ok(info)
}

/// The type as T-SQL declares it.
fn sql_type(info: &TypeInfo) -> String {
    let sized = |name: &str, bytes: usize, per_char: usize| {
        if bytes == 0xFFFF { format!("{name}(max)") } else { format!("{name}({})", bytes / per_char) }
    };
    match info.code {
        code::NULL => "null".into(),
        code::INT1 => "tinyint".into(),
        code::INT2 => "smallint".into(),
        code::INT4 => "int".into(),
        code::INT8 => "bigint".into(),
        code::BIT | code::BITN => "bit".into(),
        code::FLT4 => "real".into(),
        code::FLT8 => "float".into(),
        code::MONEY => "money".into(),
        code::MONEY4 => "smallmoney".into(),
        code::DATETIME => "datetime".into(),
        code::DATETIME4 => "smalldatetime".into(),
        code::GUID => "uniqueidentifier".into(),
        code::INTN => match info.len {
            1 => "tinyint".into(),
            2 => "smallint".into(),
            4 => "int".into(),
            _ => "bigint".into(),
        },
        code::FLTN => if info.len == 4 { "real" } else { "float" }.into(),
        code::MONEYN => if info.len == 4 { "smallmoney" } else { "money" }.into(),
        code::DATETIMN => if info.len == 4 { "smalldatetime" } else { "datetime" }.into(),
        code::DECIMALN => format!("decimal({},{})", info.precision, info.scale),
        code::NUMERICN => format!("numeric({},{})", info.precision, info.scale),
        code::DATEN => "date".into(),
        code::TIMEN => format!("time({})", info.scale),
        code::DATETIME2N => format!("datetime2({})", info.scale),
        code::DATETIMEOFFSETN => format!("datetimeoffset({})", info.scale),
        code::NVARCHAR => sized("nvarchar", info.len, 2),
        code::NCHAR => sized("nchar", info.len, 2),
        code::BIGVARCHAR => sized("varchar", info.len, 1),
        code::BIGCHAR => sized("char", info.len, 1),
        code::BIGVARBINARY => sized("varbinary", info.len, 1),
        code::BIGBINARY => sized("binary", info.len, 1),
        code::TEXT => "text".into(),
        code::NTEXT => "ntext".into(),
        code::IMAGE => "image".into(),
        code::XML => "xml".into(),
        code::SSVARIANT => "sql_variant".into(),
        other => format!("0x{other:02X}"),
    }
}

fn value(r: &mut Reader<'_>, info: &TypeInfo) -> Parsed<ParamValue> {
    if info.code == code::NULL {
        return Ok(ParamValue::Null);
    }
    if fixed_size(info.code).is_some() {
        return scalar(info, r.take(info.len)?);
    }
    match info.code {
        code::BIGVARBINARY | code::BIGBINARY | code::BIGVARCHAR | code::BIGCHAR | code::NVARCHAR | code::NCHAR => {
            let data = if info.len == 0xFFFF {
                plp(r)?
            } else {
                match r.u16()? {
                    0xFFFF => None,
                    n => Some(r.take(n as usize)?.to_vec()),
                }
            };
            data.map_or(Ok(ParamValue::Null), |bytes| scalar(info, &bytes))
        }
        code::TEXT | code::NTEXT | code::IMAGE => match r.u32()? {
            u32::MAX => Ok(ParamValue::Null),
            n => scalar(info, r.take(n as usize)?),
        },
        code::XML => match plp(r)? {
            None => Ok(ParamValue::Null),
            Some(bytes) => Ok(ParamValue::Text(utf16(&bytes)?.trim_start_matches('\u{FEFF}').to_string())),
        },
        code::SSVARIANT => match r.u32()? {
            0 => Ok(ParamValue::Null),
            n => Ok(ParamValue::Other(format!("sql_variant {}", hex(r.take(n as usize)?)))),
        },
        _ => match r.u8()? {
            0 => Ok(ParamValue::Null),
            n => scalar(info, r.take(n as usize)?),
        },
    }
}

/// A PLP value (MS-TDS 2.2.5.2.3): total length, then chunks up to a zero
/// chunk. `None` for NULL.
fn plp(r: &mut Reader<'_>) -> Parsed<Option<Vec<u8>>> {
    if r.u64()? == u64::MAX {
        return Ok(None);
    }
    let mut data = Vec::new();
    loop {
        let chunk = r.u32()? as usize;
        if chunk == 0 {
            return Ok(Some(data));
        }
        data.extend_from_slice(r.take(chunk)?);
    }
}

/// The value of a non-NULL `bytes` of type `info`.
fn scalar(info: &TypeInfo, bytes: &[u8]) -> Parsed<ParamValue> {
    let wrong = || Malformed(format!("{} bytes for a {} value", bytes.len(), sql_type(info)));
    let le = |n: usize| -> Parsed<u64> {
        if bytes.len() < n {
            return Err(wrong());
        }
        Ok(bytes[..n].iter().rev().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    };
    Ok(match info.code {
        code::INT1 | code::INT2 | code::INT4 | code::INT8 | code::INTN => ParamValue::Int(match bytes.len() {
            1 => i64::from(bytes[0]),
            2 => i64::from(i16::from_le_bytes(bytes.try_into().unwrap())),
            4 => i64::from(i32::from_le_bytes(bytes.try_into().unwrap())),
            8 => i64::from_le_bytes(bytes.try_into().unwrap()),
            _ => return Err(wrong()),
        }),
        code::BIT | code::BITN => ParamValue::Bool(*bytes.first().ok_or_else(wrong)? != 0),
        code::FLT4 | code::FLT8 | code::FLTN => ParamValue::Float(match bytes.len() {
            4 => f64::from(f32::from_le_bytes(bytes.try_into().unwrap())),
            8 => f64::from_le_bytes(bytes.try_into().unwrap()),
            _ => return Err(wrong()),
        }),
        code::MONEY | code::MONEY4 | code::MONEYN => {
            let units = match bytes.len() {
                4 => i64::from(i32::from_le_bytes(bytes.try_into().unwrap())),
                8 => {
                    let high = i32::from_le_bytes(bytes[..4].try_into().unwrap());
                    let low = u32::from_le_bytes(bytes[4..].try_into().unwrap());
                    (i64::from(high) << 32) | i64::from(low)
                }
                _ => return Err(wrong()),
            };
            ParamValue::Decimal(scaled(units < 0, u128::from(units.unsigned_abs()), 4))
        }
        code::DECIMALN | code::NUMERICN => {
            let (sign, magnitude) = bytes.split_first().ok_or_else(wrong)?;
            if magnitude.len() > 16 {
                return Err(wrong());
            }
            let value = magnitude.iter().rev().fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
            ParamValue::Decimal(scaled(*sign == 0, value, info.scale))
        }
        code::DATETIME | code::DATETIME4 | code::DATETIMN => match bytes.len() {
            4 => {
                let day = date(i64::from(u16::from_le_bytes([bytes[0], bytes[1]])), 1900)?;
                let minutes = u16::from_le_bytes([bytes[2], bytes[3]]);
                ParamValue::DateTime(format!("{day} {:02}:{:02}:00", minutes / 60, minutes % 60))
            }
            8 => {
                let day = date(i64::from(i32::from_le_bytes(bytes[..4].try_into().unwrap())), 1900)?;
                let ticks = u64::from(u32::from_le_bytes(bytes[4..].try_into().unwrap()));
                let millis = (ticks * 10 + 1) / 3; // a tick is 1/300 s
                ParamValue::DateTime(format!("{day} {}", clock(millis, 3)))
            }
            _ => return Err(wrong()),
        },
        code::DATEN => ParamValue::DateTime(date(le(3)? as i64, 1)?),
        code::TIMEN => ParamValue::DateTime(clock(le(bytes.len())?, info.scale)),
        code::DATETIME2N => {
            let time = bytes.len().checked_sub(3).ok_or_else(wrong)?;
            let day = date(i64::from(u32::from_le_bytes([bytes[time], bytes[time + 1], bytes[time + 2], 0])), 1)?;
            ParamValue::DateTime(format!("{day} {}", clock(le(time)?, info.scale)))
        }
        code::DATETIMEOFFSETN => {
            // Date and time are UTC; shown in the offset's local time.
            let time = bytes.len().checked_sub(5).ok_or_else(wrong)?;
            let days = i64::from(u32::from_le_bytes([bytes[time], bytes[time + 1], bytes[time + 2], 0]));
            let offset = i64::from(i16::from_le_bytes([bytes[time + 3], bytes[time + 4]]));
            let per_minute = 60 * 10u64.pow(u32::from(info.scale));
            let per_day = (24 * 60 * per_minute) as i64;
            let local = days * per_day + le(time)? as i64 + offset * per_minute as i64;
            let day = date(local.div_euclid(per_day), 1)?;
            let sign = if offset < 0 { '-' } else { '+' };
            ParamValue::DateTime(format!(
                "{day} {} {sign}{:02}:{:02}",
                clock(local.rem_euclid(per_day) as u64, info.scale),
                offset.abs() / 60,
                offset.abs() % 60
            ))
        }
        code::GUID => {
            if bytes.len() != 16 {
                return Err(wrong());
            }
            let b = bytes;
            ParamValue::Other(format!(
                "{:02X}{:02X}{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{}",
                b[3],
                b[2],
                b[1],
                b[0],
                b[5],
                b[4],
                b[7],
                b[6],
                b[8],
                b[9],
                b[10..].iter().map(|x| format!("{x:02X}")).collect::<String>()
            ))
        }
        code::NVARCHAR | code::NCHAR | code::NTEXT => ParamValue::Text(utf16(bytes)?),
        code::BIGVARCHAR | code::BIGCHAR | code::TEXT => ParamValue::Text(match std::str::from_utf8(bytes) {
            Ok(text) => text.to_string(),
            Err(_) => bytes.iter().map(|b| char::from(*b)).collect(),
        }),
        code::BIGVARBINARY | code::BIGBINARY | code::IMAGE => ParamValue::Other(hex(bytes)),
        _ => return Err(wrong()),
    })
}

/// `magnitude` / 10^`scale` as exact decimal text: `1500.75`, `-0.50`, `12`.
fn scaled(negative: bool, magnitude: u128, scale: u8) -> String {
    let digits = magnitude.to_string();
    let scale = scale as usize;
    let digits =
        if digits.len() <= scale { format!("{}{digits}", "0".repeat(scale + 1 - digits.len())) } else { digits };
    let (whole, fraction) = digits.split_at(digits.len() - scale);
    let sign = if negative && magnitude != 0 { "-" } else { "" };
    if scale == 0 { format!("{sign}{whole}") } else { format!("{sign}{whole}.{fraction}") }
}

/// `days` after January 1st of `year` (1 or 1900), as `YYYY-MM-DD`.
fn date(days: i64, year: i32) -> Parsed<String> {
    NaiveDate::from_ymd_opt(year, 1, 1)
        .and_then(|start| start.checked_add_signed(Duration::days(days)))
        .map(|d| d.format("%Y-%m-%d").to_string())
        .ok_or_else(|| Malformed(format!("{days} days after {year}-01-01 is out of range")))
}

/// `HH:MM:SS` plus `scale` fraction digits, from a count of 10^-`scale` s.
fn clock(units: u64, scale: u8) -> String {
    let per_second = 10u64.pow(u32::from(scale));
    let (seconds, fraction) = (units / per_second, units % per_second);
    let text = format!("{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60);
    if scale == 0 { text } else { format!("{text}.{fraction:0width$}", width = scale as usize) }
}

fn hex(bytes: &[u8]) -> String {
    std::iter::once("0x".to_string()).chain(bytes.iter().map(|b| format!("{b:02X}"))).collect()
}

/// `(name, type)` for each parameter in an sp_executesql declaration such
/// as `@P1 bigint,@P2 numeric(6,2)`, types spelled as [`Param::sql_type`].
pub fn declared_types(declaration: &str) -> Vec<(String, String)> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in declaration.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&declaration[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&declaration[start..]);
    items
        .into_iter()
        .filter_map(|item| {
            let item = item.trim();
            let (name, ty) = item.split_once(char::is_whitespace)?;
            Some((name.to_string(), normalize(ty)))
        })
        .collect()
}

/// A declared type in [`Param::sql_type`] spelling: lower case, no spaces,
/// T-SQL's defaults made explicit (`datetime2` is `datetime2(7)`).
fn normalize(ty: &str) -> String {
    let mut ty: String = ty.to_lowercase().split_whitespace().collect::<Vec<_>>().join(" ");
    for suffix in [" output", " out", " readonly"] {
        if let Some(stripped) = ty.strip_suffix(suffix) {
            ty = stripped.to_string();
        }
    }
    let ty: String = ty.replace(" (", "(").replace(", ", ",").replace(" )", ")");
    if let Some(bits) = ty.strip_prefix("float(").and_then(|r| r.strip_suffix(')')) {
        return if bits.trim().parse::<u32>().is_ok_and(|n| n <= 24) { "real".into() } else { "float".into() };
    }
    match ty.as_str() {
        "double precision" => "float".into(),
        "datetime2" | "time" | "datetimeoffset" => format!("{ty}(7)"),
        "numeric" | "decimal" => format!("{ty}(18,0)"),
        "dec" => "decimal(18,0)".into(),
        "integer" => "int".into(),
        _ => ty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_every_digit() {
        assert_eq!(scaled(false, 150_075, 2), "1500.75");
        assert_eq!(scaled(true, 50, 2), "-0.50");
        assert_eq!(scaled(false, 0, 3), "0.000");
        assert_eq!(scaled(true, 0, 0), "0");
        assert_eq!(scaled(false, 12, 0), "12");
    }

    #[test]
    fn clocks_show_the_scale() {
        assert_eq!(clock(9 * 3600 * 10_000_000, 7), "09:00:00.0000000");
        assert_eq!(clock(61, 0), "00:01:01");
        assert_eq!(clock(12_345, 3), "00:00:12.345");
    }

    #[test]
    fn declarations_become_types() {
        assert_eq!(
            declared_types("@P1 bigint,@P2 float(53),@P3 numeric(6, 2),@P4 datetime2,@P5 nvarchar(4000) OUTPUT"),
            vec![
                ("@P1".to_string(), "bigint".to_string()),
                ("@P2".to_string(), "float".to_string()),
                ("@P3".to_string(), "numeric(6,2)".to_string()),
                ("@P4".to_string(), "datetime2(7)".to_string()),
                ("@P5".to_string(), "nvarchar(4000)".to_string()),
            ]
        );
        assert!(declared_types("").is_empty());
    }
}
