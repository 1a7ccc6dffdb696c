//! A bounded, deterministic loopback fuzz run of the real binary's HTTP
//! intake: CI's proof that hostile input is harmless.
//!
//! The middleware runs with the sqlite writer, `server.auth` (two webhook
//! secrets and a bearer token), `server.delivery_id_field` and an admin
//! token. A seeded generator (SplitMix64, in this file) writes at least
//! 10,000 requests as raw bytes over TCP: garbage request lines, bad, huge,
//! duplicate and injected headers, wrong and missing content types, lying
//! lengths, valid and broken chunked bodies, bodies over the limit, invalid
//! UTF-8 and JSON, nesting and member counts beyond the limits, JSON that is
//! not an event, odd keys and values, every way a signature can be wrong,
//! unknown paths and methods, other protocols, HTTP/2 prefaces and frames
//! (the server speaks HTTP/1.1 only: it must close such a connection without
//! an answer), and a share of valid signed events (some unmapped, some sent
//! again with the same delivery id).
//!
//! It asserts: no answer is 5xx; no request hangs; every request with a
//! precise expected answer gets it; the process is alive at the end and never
//! panicked; and the journal holds exactly the events answered `accepted` or
//! `unmapped`, each byte for byte the body that was sent, so nothing refused
//! was stored. It prints the counts by status, by error code and by class.
//!
//! `BUKTOR_FUZZ_SEED` (decimal or 0x-hex) and `BUKTOR_FUZZ_REQUESTS` change the
//! seed and the number of requests. The same seed gives the same requests,
//! except for signature timestamps, which follow the clock.
//!
//! Signing uses `buktor_tests::signing` (the `hmac`, `sha2` and `base64`
//! crates), checked against the Standard Webhooks specification's test
//! vector.

use std::{
    collections::{BTreeMap, HashMap},
    io::{ErrorKind, Read, Write},
    net::{Shutdown, TcpStream},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use buktor_tests::{Middleware, Setup, query, signing::signature};
use serde_json::json;

const SECRET: &[u8] = b"buktor-fuzz-secret-key-0123456789";
const OLD_SECRET: &[u8] = b"an-older-secret-still-accepted!!";
const UNKNOWN_SECRET: &[u8] = b"a-secret-this-server-does-not-know";
const BEARER: &str = "fuzz-bearer-token-0123456789";
const ADMIN: &str = "fuzz-admin-token-0123456789";
const MAX_BODY: usize = 16 * 1024;
const MAX_DEPTH: usize = 32;
const MAX_MEMBERS: usize = 200;
const MAX_NODES: usize = 400;
/// Wide, so that valid signatures (made when the cases are generated)
/// are still valid when a slow machine gets round to sending them.
const TOLERANCE_SECS: i64 = 3600;
const DEFAULT_SEED: u64 = 0xB0C7_0F22_5EED_0001;
const DEFAULT_REQUESTS: usize = 10_500;
const THREADS: usize = 4;
/// How long one read may wait: far more than any answer takes.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

#[test]
fn hostile_requests_are_refused_harmlessly_and_nothing_refused_is_journaled() {
    let seed = env_number("BUKTOR_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let requests = env_number("BUKTOR_FUZZ_REQUESTS").map_or(DEFAULT_REQUESTS, |n| n as usize);
    say(&format!(
        "intake fuzz: seed {seed:#x} ({seed}), {requests} requests, {THREADS} threads \
         (BUKTOR_FUZZ_SEED and BUKTOR_FUZZ_REQUESTS to change them)"
    ));

    let mut setup = Setup::new();
    setup.config["server"] = json!({
        "listen": "127.0.0.1:0",
        "admin_listen": "127.0.0.1:0",
        // The admin routes on the intake port too, so that the fuzz reaches
        // them through the same connections.
        "operator_routes_on_intake_port": true,
        "max_body_bytes": MAX_BODY,
        "max_json_depth": MAX_DEPTH,
        "max_json_members": MAX_MEMBERS,
        "max_json_nodes": MAX_NODES,
        "delivery_id_field": "event_id",
        "admin_token": ADMIN,
        "auth": {
            "webhook_secrets": [secret_text(SECRET), secret_text(OLD_SECRET)],
            "bearer_tokens": [BEARER],
            "timestamp_tolerance_secs": TOLERANCE_SECS,
        },
    });
    let middleware = setup.start();

    let started = Instant::now();
    let mut generator = Generator::new(seed, middleware.address.clone());
    let cases: Vec<Case> = (0..requests).map(|i| generator.case(i)).collect();
    let generated_in = started.elapsed();
    // BUKTOR_FUZZ_SHOW=12,345: print those cases, to reproduce one by hand.
    for index in std::env::var("BUKTOR_FUZZ_SHOW").unwrap_or_default().split(',').filter_map(|n| n.trim().parse().ok())
    {
        if let Some(case) = cases.get::<usize>(index) {
            say(&format!("case {index} ({}): {}", case.class, excerpt(&case.bytes)));
        }
    }

    let sent_at = Instant::now();
    let cases = std::sync::Arc::new(cases);
    let workers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let cases = cases.clone();
            let address = middleware.address.clone();
            std::thread::spawn(move || run_thread(&address, &cases, thread))
        })
        .collect();
    let mut tally = Tally::default();
    for worker in workers {
        tally.merge(worker.join().expect("a sender thread panicked"));
    }
    let sent_in = sent_at.elapsed();

    // Alive, answering, and never panicked.
    let health = buktor_tests::http::request(&middleware.address, "GET", "/health", &[], b"");
    let alive = matches!(&health, Ok(r) if r.status == 200);
    std::thread::sleep(Duration::from_millis(300));
    let logs = middleware.logs();
    let panics: Vec<String> = panic_lines(&logs).into_iter().take(5).collect();

    // The journal holds exactly what was answered accepted or unmapped.
    let journal = setup.journal();
    let rows = query(&journal, "SELECT e.id, p.body FROM events AS e LEFT JOIN payloads AS p ON p.event_id = e.id");
    let mut journal_failures = Vec::new();
    let answered: HashMap<i64, &Journaled> = tally.journaled.iter().map(|j| (j.id, j)).collect();
    if answered.len() != tally.journaled.len() {
        journal_failures.push("two answers carried the same journal id".to_string());
    }
    for row in &rows {
        let id = row[0].as_i64().expect("an id");
        match answered.get(&id) {
            None => journal_failures.push(format!(
                "journal row {id} was never answered accepted or unmapped: {}",
                excerpt(row[1].as_str().unwrap_or("<no payload>").as_bytes())
            )),
            Some(j) => {
                let stored = row[1].as_str().map(str::as_bytes);
                if stored != j.body.as_deref() {
                    journal_failures.push(format!(
                        "journal row {id} (case {}, {}) holds {} but the accepted body was {}",
                        j.case,
                        j.class,
                        excerpt(stored.unwrap_or(b"<none>")),
                        excerpt(j.body.as_deref().unwrap_or(b"<unknown>"))
                    ));
                }
            }
        }
    }
    let stored: std::collections::HashSet<i64> = rows.iter().filter_map(|r| r[0].as_i64()).collect();
    for j in &tally.journaled {
        if !stored.contains(&j.id) {
            journal_failures
                .push(format!("case {} ({}) was answered with id {} but the journal lacks it", j.case, j.class, j.id));
        }
    }

    // What the worker made of the accepted events (reported, not asserted).
    let drain_started = Instant::now();
    let drained = settle(Duration::from_secs(12), || {
        query(&setup.journal(), "SELECT status, COUNT(*), SUM(attempts) FROM events GROUP BY status ORDER BY status")
    });
    let drained_in = drain_started.elapsed();
    let by_status = query(&journal, "SELECT status, COUNT(*) FROM events GROUP BY status ORDER BY status");
    let failed_errors = query(
        &journal,
        "SELECT substr(last_error, 1, 90) AS e, COUNT(*) FROM events WHERE status = 'failed' GROUP BY e ORDER BY 2 DESC LIMIT 8",
    );

    // Report.
    let mut report = String::new();
    let total_answers: usize = tally.statuses.values().sum();
    report.push_str(&format!(
        "\nintake fuzz report: seed {seed:#x}, {requests} requests on {} connections, {total_answers} outcomes; \
         generated in {:.1?}, sent in {:.1?} ({:.0} requests/s)\n",
        requests,
        generated_in,
        sent_in,
        requests as f64 / sent_in.as_secs_f64()
    ));
    report.push_str("\n  by status:\n");
    for (status, n) in &tally.statuses {
        report.push_str(&format!("    {status:<32} {n:>6}\n"));
    }
    report.push_str("\n  by error code:\n");
    for (code, n) in &tally.codes {
        report.push_str(&format!("    {code:<32} {n:>6}\n"));
    }
    report.push_str("\n  by class (cases: outcomes):\n");
    for (class, outcomes) in &tally.classes {
        let cases = tally.class_cases.get(class).copied().unwrap_or(0);
        let list: Vec<String> = outcomes.iter().map(|(o, n)| format!("{o}: {n}")).collect();
        report.push_str(&format!("    {class:<24} {cases:>5}  {}\n", list.join(", ")));
    }
    report.push_str(&format!(
        "\n  journal: {} rows; answered accepted {}, unmapped {}, duplicate {} (duplicates add nothing)\n",
        rows.len(),
        tally.statuses.get("200 accepted").unwrap_or(&0),
        tally.statuses.get("202 unmapped").unwrap_or(&0),
        tally.statuses.get("200 duplicate").unwrap_or(&0),
    ));
    let statuses: Vec<String> = by_status.iter().map(|r| format!("{}: {}", r[0], r[1])).collect();
    report.push_str(&format!(
        "  journal statuses once the worker {} ({drained_in:.1?}): {}\n",
        if drained { "settled" } else { "had not settled" },
        statuses.join(", ")
    ));
    for row in &failed_errors {
        report.push_str(&format!("    failed x{:<4} {}\n", row[1], row[0].as_str().unwrap_or("")));
    }
    report.push_str(&format!(
        "  process alive at the end: {alive}; panics in its log: {}\n",
        if panics.is_empty() { "none".to_string() } else { panics.join(" | ") }
    ));
    say(&report);

    // A panic: find the requests that cause it, one at a time.
    let mut culprits = Vec::new();
    if !panics.is_empty() && alive {
        culprits = find_panicking_cases(&middleware, &cases, &tally.unanswered);
        for (case, line) in &culprits {
            say(&format!(
                "PANIC reproduced by case {} ({}): {line}\n  request: {}",
                case.index,
                case.class,
                excerpt(&case.bytes)
            ));
        }
    }

    let mut problems = Vec::new();
    if !tally.failures.is_empty() {
        let mut kinds: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
        for (kind, detail) in &tally.failures {
            kinds.entry(kind).or_insert((0, detail)).0 += 1;
        }
        let listed: Vec<String> =
            kinds.iter().take(12).map(|(kind, (n, first))| format!("{n} x {kind}\n  first: {first}")).collect();
        problems.push(format!(
            "{} requests were answered unlike expected, in {} kinds:\n{}",
            tally.failures.len(),
            kinds.len(),
            listed.join("\n")
        ));
    }
    if !journal_failures.is_empty() {
        problems.push(format!(
            "the journal does not match the answers:\n{}",
            journal_failures.iter().take(12).cloned().collect::<Vec<_>>().join("\n")
        ));
    }
    if !alive {
        problems.push(format!("the middleware no longer answers GET /health: {health:?}\nlogs:\n{}", tail(&logs, 40)));
    }
    if !panics.is_empty() {
        problems.push(format!("the middleware panicked ({} reproduced):\n{}", culprits.len(), panics.join("\n")));
    }
    let accepted = tally.statuses.get("200 accepted").copied().unwrap_or(0);
    let duplicates = tally.statuses.get("200 duplicate").copied().unwrap_or(0);
    let unmapped = tally.statuses.get("202 unmapped").copied().unwrap_or(0);
    if requests >= 1000 && (accepted < requests / 50 || duplicates == 0 || unmapped == 0) {
        problems.push(format!(
            "too few valid events got through ({accepted} accepted, {duplicates} duplicate, {unmapped} unmapped): \
             the generator no longer exercises the accepting path"
        ));
    }
    assert!(problems.is_empty(), "intake fuzz (seed {seed:#x}) failed:\n\n{}", problems.join("\n\n"));
}

/// Written to the process's stderr itself, past cargo's output capture, so
/// that the counts show in every run (CI's log included), passing or not.
fn say(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => text.replace('_', "").parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={text:?} is not a number: {e}")))
}

/// Polls `state` until it stops changing for two seconds (true), or
/// `timeout` passes (false).
fn settle<T: PartialEq>(timeout: Duration, mut state: impl FnMut() -> T) -> bool {
    let deadline = Instant::now() + timeout;
    let (mut last, mut since) = (state(), Instant::now());
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let now = state();
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= Duration::from_secs(2) {
            return true;
        }
    }
    false
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Bytes as escaped ASCII, cut to a readable length.
fn excerpt(bytes: &[u8]) -> String {
    let escaped = bytes.escape_ascii().to_string();
    if escaped.len() > 600 { format!("{}… ({} bytes in all)", &escaped[..600], bytes.len()) } else { escaped }
}

/// Each "panicked at" line of the log with the message on the line after it.
fn panic_lines(logs: &str) -> Vec<String> {
    let lines: Vec<&str> = logs.lines().collect();
    (0..lines.len())
        .filter(|&i| lines[i].contains("panicked"))
        .map(|i| format!("{} {}", lines[i], lines.get(i + 1).unwrap_or(&"")))
        .collect()
}

/// Sends the cases that were not answered again, one at a time, and returns
/// those after which a new panic appears in the log.
fn find_panicking_cases<'a>(middleware: &Middleware, cases: &'a [Case], suspects: &[usize]) -> Vec<(&'a Case, String)> {
    let mut found = Vec::new();
    for &index in suspects.iter().take(2000) {
        let before = middleware.logs().matches("panicked").count();
        let case = &cases[index];
        let _ = exchange(&middleware.address, case);
        std::thread::sleep(Duration::from_millis(5));
        let logs = middleware.logs();
        if logs.matches("panicked").count() > before {
            let line = panic_lines(&logs).pop().unwrap_or_default();
            found.push((case, line));
            if found.len() >= 3 {
                break;
            }
        }
    }
    found
}

// ---------------------------------------------------------------------------
// Sending and checking
// ---------------------------------------------------------------------------

/// One connection's worth of bytes, and what each request in it must get.
struct Case {
    index: usize,
    class: &'static str,
    bytes: Vec<u8>,
    /// Write this many bytes first, then the rest a moment later.
    split: Option<usize>,
    /// Close the sending side after writing (the request is incomplete, so
    /// the server would otherwise wait for the rest).
    half_close: bool,
    /// One per request in `bytes`.
    sent: Vec<Sent>,
}

struct Sent {
    expect: Expect,
    /// The body the server reads, when it is known (to compare with the journal).
    body: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
enum Expect {
    /// 200 `{"status": "accepted"}`.
    Accepted,
    /// 202 `{"status": "unmapped"}`.
    Unmapped,
    /// 200 `{"status": "duplicate"}` with the id case N was accepted under.
    Duplicate(usize),
    /// A 4xx, with this status and error code when given; `closed` allows
    /// the connection to close without an answer.
    Refused { status: Option<u16>, code: Option<&'static str>, closed: bool },
    /// No answer: the connection closes (or is reset).
    Closed,
    /// Exactly this status, nothing stored (`/health`).
    Status(u16),
    /// Any answer below 500 that stores nothing, or (with `closed`) none.
    NotStored { closed: bool },
    /// Anything but a 5xx; if stored, the body is known.
    Any,
}

fn refused(status: u16, code: &'static str) -> Expect {
    Expect::Refused { status: Some(status), code: Some(code), closed: false }
}

fn refused_or_closed(status: u16, code: &'static str) -> Expect {
    Expect::Refused { status: Some(status), code: Some(code), closed: true }
}

/// Some 4xx, which one does not matter.
fn some_refusal() -> Expect {
    Expect::Refused { status: None, code: None, closed: false }
}

fn not_stored() -> Expect {
    Expect::NotStored { closed: true }
}

#[derive(Debug, Clone)]
enum Outcome {
    Answer { status: u16, json: Option<serde_json::Value> },
    Closed,
    Reset,
    Timeout,
    Garbled(String),
}

impl Outcome {
    fn label(&self) -> String {
        match self {
            Outcome::Answer { status, json } => match json.as_ref().and_then(|j| j["status"].as_str()) {
                Some(s @ ("accepted" | "unmapped" | "duplicate")) => format!("{status} {s}"),
                _ => status.to_string(),
            },
            Outcome::Closed => "closed without answer".into(),
            Outcome::Reset => "reset without answer".into(),
            Outcome::Timeout => "NO ANSWER (timeout)".into(),
            Outcome::Garbled(_) => "GARBLED answer".into(),
        }
    }

    /// A new journal row: answered accepted or unmapped.
    fn journal_id(&self) -> Option<i64> {
        match self {
            Outcome::Answer { status: 200 | 202, json: Some(json) }
                if matches!(json["status"].as_str(), Some("accepted" | "unmapped")) =>
            {
                json["id"].as_i64()
            }
            _ => None,
        }
    }

    fn is_store_answer(&self) -> bool {
        matches!(self, Outcome::Answer { status: 200 | 202, json: Some(json) }
            if matches!(json["status"].as_str(), Some("accepted" | "unmapped" | "duplicate")))
    }
}

struct Journaled {
    id: i64,
    case: usize,
    class: &'static str,
    body: Option<Vec<u8>>,
}

#[derive(Default)]
struct Tally {
    statuses: BTreeMap<String, usize>,
    codes: BTreeMap<String, usize>,
    classes: BTreeMap<&'static str, BTreeMap<String, usize>>,
    class_cases: BTreeMap<&'static str, usize>,
    journaled: Vec<Journaled>,
    /// (kind, detail): the kind groups them in the report.
    failures: Vec<(String, String)>,
    /// Cases with a request that got no answer (a panic would look so).
    unanswered: Vec<usize>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.codes {
            *self.codes.entry(k).or_default() += v;
        }
        for (class, outcomes) in other.classes {
            let mine = self.classes.entry(class).or_default();
            for (k, v) in outcomes {
                *mine.entry(k).or_default() += v;
            }
        }
        for (k, v) in other.class_cases {
            *self.class_cases.entry(k).or_default() += v;
        }
        self.journaled.extend(other.journaled);
        self.failures.extend(other.failures);
        self.unanswered.extend(other.unanswered);
        self.unanswered.sort_unstable();
    }
}

/// Sends this thread's share of the cases, in order, and checks each answer.
fn run_thread(address: &str, cases: &[Case], thread: usize) -> Tally {
    let mut tally = Tally::default();
    // Case → the journal id its first request was answered with, for duplicates.
    let mut ids: HashMap<usize, i64> = HashMap::new();
    for case in cases.iter().skip(thread).step_by(THREADS) {
        let mut outcomes = exchange(address, case);
        *tally.class_cases.entry(case.class).or_default() += 1;
        if outcomes.len() < case.sent.len() {
            outcomes.resize(case.sent.len(), Outcome::Closed);
        }
        if outcomes.iter().any(|o| matches!(o, Outcome::Closed | Outcome::Reset)) {
            tally.unanswered.push(case.index);
        }
        for (n, outcome) in outcomes.iter().enumerate() {
            let label = outcome.label();
            *tally.statuses.entry(label.clone()).or_default() += 1;
            *tally.classes.entry(case.class).or_default().entry(label).or_default() += 1;
            if let Outcome::Answer { json: Some(json), .. } = outcome
                && let Some(code) = json["error"].as_str()
            {
                *tally.codes.entry(code.to_string()).or_default() += 1;
            } else if let Outcome::Answer { status, json: None } = outcome {
                *tally.codes.entry(format!("(no JSON body, {status})")).or_default() += 1;
            }
            let sent = case.sent.get(n);
            if let Some(id) = outcome.journal_id() {
                tally.journaled.push(Journaled {
                    id,
                    case: case.index,
                    class: case.class,
                    body: sent.and_then(|s| s.body.clone()),
                });
                if n == 0 {
                    ids.insert(case.index, id);
                }
            }
            let expect = sent.map_or(not_stored(), |s| s.expect.clone());
            if let Err(why) = check(&expect, outcome, sent.and_then(|s| s.body.as_deref()), &ids) {
                let kind = format!("{}: {why}", case.class);
                let detail = format!(
                    "case {}, request {}: got {outcome:?}\n    request: {}",
                    case.index,
                    n + 1,
                    excerpt(&case.bytes)
                );
                tally.failures.push((kind, detail));
            }
        }
    }
    tally
}

fn check(expect: &Expect, outcome: &Outcome, body: Option<&[u8]>, ids: &HashMap<usize, i64>) -> Result<(), String> {
    let (status, json) = match outcome {
        Outcome::Answer { status, json } => (*status, json.as_ref()),
        Outcome::Timeout => return Err("no answer and no close within the read timeout: a hang".into()),
        Outcome::Garbled(text) => return Err(format!("an answer that is not HTTP: {text}")),
        Outcome::Closed | Outcome::Reset => {
            return match expect {
                Expect::Closed
                | Expect::Refused { closed: true, .. }
                | Expect::NotStored { closed: true }
                | Expect::Any => Ok(()),
                _ => Err(format!("expected {expect:?}, the connection closed without an answer")),
            };
        }
    };
    if status >= 500 {
        return Err(format!("a {status}"));
    }
    let stored = json.and_then(|j| j["status"].as_str()).filter(|_| outcome.is_store_answer());
    let id = json.and_then(|j| j["id"].as_i64());
    match expect {
        Expect::Accepted if status == 200 && stored == Some("accepted") => Ok(()),
        Expect::Unmapped if status == 202 && stored == Some("unmapped") => Ok(()),
        Expect::Duplicate(original) if status == 200 && stored == Some("duplicate") => match ids.get(original) {
            Some(first) if Some(*first) == id => Ok(()),
            first => Err(format!("a duplicate of case {original} (id {first:?}) answered with id {id:?}")),
        },
        Expect::Refused { .. } | Expect::Status(_) | Expect::NotStored { .. } if stored.is_some() => {
            Err("a request that must be refused was stored".into())
        }
        Expect::Status(want) if *want == status => Ok(()),
        Expect::NotStored { .. } => Ok(()),
        Expect::Refused { status: want, code, .. } => {
            if !(400..500).contains(&status) {
                return Err(format!("expected a refusal, got {status}"));
            }
            if want.is_some_and(|w| w != status) {
                return Err(format!("expected {want:?}, got {status}"));
            }
            let found = json.and_then(|j| j["error"].as_str());
            match code {
                Some(code) if found != Some(*code) => Err(format!("expected error {code}, got {found:?}")),
                _ => Ok(()),
            }
        }
        Expect::Any if stored.is_some() && stored != Some("duplicate") && body.is_none() => {
            Err("stored, but the test cannot tell what".into())
        }
        Expect::Any => Ok(()),
        _ => Err(format!("expected {expect:?}")),
    }
}

/// Sends one case on a fresh connection and reads every answer.
fn exchange(address: &str, case: &Case) -> Vec<Outcome> {
    let mut stream = match TcpStream::connect(address) {
        Ok(stream) => stream,
        Err(e) => return vec![Outcome::Garbled(format!("cannot connect: {e}"))],
    };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
    // The server may answer and close before it read everything: ignore
    // write errors, the answer (or its absence) is what counts.
    match case.split {
        Some(at) if at < case.bytes.len() => {
            if stream.write_all(&case.bytes[..at]).is_ok() {
                std::thread::sleep(Duration::from_millis(2));
                let _ = stream.write_all(&case.bytes[at..]);
            }
        }
        _ => {
            let _ = stream.write_all(&case.bytes);
        }
    }
    if case.half_close {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let mut reader = Responses { stream, buffer: Vec::new(), eof: false };
    let mut outcomes = Vec::new();
    while outcomes.len() < case.sent.len() {
        let outcome = reader.next();
        let last = !matches!(outcome, Outcome::Answer { .. });
        outcomes.push(outcome);
        if last {
            break;
        }
    }
    // Anything more the server says (it may read more requests than meant).
    if matches!(outcomes.last(), Some(Outcome::Answer { .. })) && !reader.eof {
        let _ = reader.stream.shutdown(Shutdown::Write);
        loop {
            match reader.next() {
                answer @ Outcome::Answer { .. } => outcomes.push(answer),
                Outcome::Closed | Outcome::Reset => break,
                other => {
                    outcomes.push(other);
                    break;
                }
            }
        }
    }
    outcomes
}

struct Responses {
    stream: TcpStream,
    buffer: Vec<u8>,
    eof: bool,
}

impl Responses {
    /// The next final (non-1xx) response.
    fn next(&mut self) -> Outcome {
        loop {
            match parse_response(&self.buffer, self.eof) {
                Parsed::Complete { used, status, body } => {
                    self.buffer.drain(..used);
                    if (100..200).contains(&status) {
                        continue;
                    }
                    let json = serde_json::from_slice(&body).ok();
                    return Outcome::Answer { status, json };
                }
                Parsed::Invalid(why) => return Outcome::Garbled(format!("{why}: {}", excerpt(&self.buffer))),
                Parsed::Incomplete if self.eof => {
                    return if self.buffer.is_empty() {
                        Outcome::Closed
                    } else {
                        Outcome::Garbled(format!("cut off: {}", excerpt(&self.buffer)))
                    };
                }
                Parsed::Incomplete => {}
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return Outcome::Timeout,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    // A reset: what arrived before it still counts.
                    self.eof = true;
                    if self.buffer.is_empty() {
                        return Outcome::Reset;
                    }
                }
            }
        }
    }
}

enum Parsed {
    Complete { used: usize, status: u16, body: Vec<u8> },
    Incomplete,
    Invalid(&'static str),
}

/// One response at the start of `data`. At end of input, a body shorter
/// than announced (the answer to HEAD) is taken as it is.
fn parse_response(data: &[u8], eof: bool) -> Parsed {
    let Some(split) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if data.len() > 64 * 1024 { Parsed::Invalid("endless headers") } else { Parsed::Incomplete };
    };
    let Ok(head) = std::str::from_utf8(&data[..split]) else { return Parsed::Invalid("headers are not UTF-8") };
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    if !status_line.starts_with("HTTP/1.") {
        return Parsed::Invalid("no status line");
    }
    let Some(status) = status_line.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok()) else {
        return Parsed::Invalid("no status code");
    };
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { return Parsed::Invalid("a header without a colon") };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "content-length" {
            length = value.parse::<usize>().ok();
        } else if name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        }
    }
    let start = split + 4;
    let rest = &data[start..];
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return Parsed::Complete { used: start, status, body: Vec::new() };
    }
    if chunked {
        return match dechunk(rest) {
            Some((body, used)) => Parsed::Complete { used: start + used, status, body },
            None if eof => Parsed::Complete { used: data.len(), status, body: Vec::new() },
            None => Parsed::Incomplete,
        };
    }
    match length {
        Some(n) if rest.len() >= n => Parsed::Complete { used: start + n, status, body: rest[..n].to_vec() },
        _ if eof => Parsed::Complete { used: data.len(), status, body: rest.to_vec() },
        _ => Parsed::Incomplete,
    }
}

fn dechunk(mut data: &[u8]) -> Option<(Vec<u8>, usize)> {
    let total = data.len();
    let mut body = Vec::new();
    loop {
        let end = data.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&data[..end]).ok()?.split(';').next()?.trim(), 16).ok()?;
        data = &data[end + 2..];
        if size == 0 {
            let end = data.windows(2).position(|w| w == b"\r\n")?;
            return Some((body, total - data.len() + end + 2));
        }
        body.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

// ---------------------------------------------------------------------------
// Generating
// ---------------------------------------------------------------------------

/// SplitMix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// 0..n
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// lo..=hi
    fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn one_of<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// An HTTP header: name and raw value bytes.
type Header = (String, Vec<u8>);

fn header(name: &str, value: impl AsRef<[u8]>) -> Header {
    (name.to_string(), value.as_ref().to_vec())
}

/// `METHOD TARGET VERSION`, the headers, an empty line, the body.
fn render(request_line: &str, headers: &[Header], body: &[u8]) -> Vec<u8> {
    let mut out = request_line.as_bytes().to_vec();
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in body.chunks(size.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn bearer() -> Vec<Header> {
    vec![header("Authorization", format!("Bearer {BEARER}"))]
}

/// `body`, a JSON object, with an `event_id` member of raw JSON `value` at its end.
fn with_event_id(body: Vec<u8>, value: &str) -> Vec<u8> {
    let mut text = String::from_utf8(body).expect("generated bodies are UTF-8");
    let closing = text.rfind('}').expect("an object");
    text.insert_str(closing, &format!(", \"event_id\": {value}"));
    text.into_bytes()
}

fn secret_text(key: &[u8]) -> String {
    format!("whsec_{}", BASE64.encode(key))
}

fn json_str(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

/// Hostile text for values: injection, control characters, unicode oddities.
const HOSTILE_TEXT: &[&str] = &[
    "confirmed",
    "paid",
    "'; DROP TABLE HIS_appointments; --",
    "\" OR 1=1 --",
    "Robert'); DELETE FROM events; --",
    "1; UPDATE HIS_payments SET HIS_amount = 0",
    "${jndi:ldap://example.invalid/a}",
    "<script>alert(1)</script>",
    "../../../../etc/passwd",
    "%s%s%s%n%x",
    "\0nul\0inside",
    "\r\nX-Injected: yes\r\n",
    "\u{202e}override right to left",
    "😀🏥💉",
    "ＡＢＣ１２３",
    "e\u{301} composed vs é",
    "\u{feff}byte order mark",
    "\u{ffff}\u{fffe} noncharacters",
    "\u{10ffff}",
    "",
    " ",
    "\\\\ backslashes \\",
    "\" quotes \"",
    "\t\u{b}\u{c}\u{8} control",
    "NaN",
    "null",
    "2025-03-03T09:00:00",
    "2025-02-30T25:61:61Z",
    "9999-12-31T23:59:59.999999999+14:00",
    "0000-01-01T00:00:00",
    "2025-03-03T09:00:00+99:99",
    "2025-03-03T09:00:00.1234567890123456789Z",
];

/// Raw JSON values, valid for serde_json.
const RAW_VALUES: &[&str] = &[
    "1500",
    // Exponents: written out exactly, or the event fails naming the field.
    "1e-7",
    "1e-400",
    "1E400000000000",
    "-0.0e-5",
    "12.5e-1",
    "\"1500\"",
    "15.00",
    "1e3",
    "-0",
    "-0.0",
    "0.1",
    "1.7976931348623157e308",
    "5e-324",
    "123456789012345678901234567890",
    "-123456789012345678901234567890.123456789",
    "18446744073709551615",
    "-9223372036854775808",
    "true",
    "false",
    "null",
    "[]",
    "{}",
    "[1, \"a\", null, [true]]",
    "{\"nested\": {\"deeper\": [1, 2, {\"x\": \"y\"}]}}",
    "\"\\u0000\"",
    "\"\\ud83d\\ude00\"",
    "\"\\u00e9\\u0301\"",
    "\"a\\/b\\\\c\\\"d\\b\\f\\n\\r\\t\"",
];

/// Odd member names (raw JSON), none of them `event_type` or a key field.
const ODD_KEYS: &[&str] = &[
    "\"\"",
    "\" \"",
    "\"__proto__\"",
    "\"constructor\"",
    "\"event_type \"",
    "\"EVENT_TYPE\"",
    "\"Event_Type\"",
    "\"st\\u0061tus_note\"",
    "\"k\\u0000ey\"",
    "\"😀\"",
    "\"a.b[0]\"",
    "\"'; DROP TABLE HIS_appointments; --\"",
    "\"HIS_appointment_id\"",
    "\"received_at\"",
    "\"updated_at\"",
    "\"nonce \"",
    "\"\\ud83d\\ude00\"",
];

/// Event types with no mapping: stored as unmapped.
const UNMAPPED_TYPES: &[&str] = &[
    "payment_refunded",
    // A forged log line, a terminal title, a bell: the text log escapes them.
    "x\nINFO buktor_middleware: forged\r",
    "\u{1b}]0;owned\u{7}\u{1b}[2J",
    "Appointment",
    "APPOINTMENT",
    "appointment ",
    " appointment",
    "appointment\u{200b}",
    "appointment\0",
    "\0",
    "😀",
    "'; DROP TABLE events; --",
    "../../etc/passwd",
    "__proto__",
    "event_type",
    "\u{202e}tnemtnioppa",
    "x",
];

/// Event types that are not a non-empty string (trimmed, Unicode spaces included).
const INVALID_TYPES: &[&str] = &[
    "\"\"",
    "\" \"",
    "\"\\t\\n\\r \"",
    "\"\\u3000\"",
    "\"\\u00a0\"",
    "\"\\u2028\"",
    "null",
    "0",
    "7",
    "-1.5e9",
    "true",
    "false",
    "[]",
    "[\"appointment\"]",
    "{}",
    "{\"event_type\": \"appointment\"}",
];

/// Key values that are neither a string nor an integer.
const INVALID_KEYS: &[&str] = &[
    "1.5",
    "1e2",
    "1.0",
    "true",
    "false",
    "[]",
    "[1]",
    "{}",
    "{\"id\": 1}",
    "0.0",
    "-1.5",
    "1E400000000000",
    "\"\"",
    "\" \"",
];

struct Original {
    case: usize,
    /// The signed request's `webhook-id`, or the bearer request's `event_id`.
    delivery_id: String,
    signed: bool,
    body: Vec<u8>,
}

struct Generator {
    rng: Rng,
    seed: u64,
    now: i64,
    address: String,
    /// Per sending thread: accepted events a duplicate may repeat.
    originals: Vec<Vec<Original>>,
}

type Make = fn(&mut Generator, usize) -> Case;

/// Classes and their weights (out of the sum).
const CLASSES: &[(u32, Make)] = &[
    // Valid events: accepted, unmapped, duplicates (about 9%).
    (30, Generator::valid_signed),
    (10, Generator::valid_unmapped),
    (8, Generator::valid_bearer),
    (12, Generator::duplicate),
    (22, Generator::valid_odd_framing),
    // Signed, but a bad body.
    (45, Generator::bad_json),
    (35, Generator::mutated_body),
    (18, Generator::not_an_object),
    (30, Generator::bad_event_type),
    (28, Generator::bad_key),
    (25, Generator::too_deep),
    (20, Generator::too_many_members),
    (20, Generator::array_bomb),
    (25, Generator::bad_delivery_id),
    // Not signed, or wrongly.
    (35, Generator::missing_credentials),
    (50, Generator::bad_timestamp),
    (70, Generator::bad_signature),
    (30, Generator::bad_bearer),
    // Content type and size.
    (40, Generator::bad_content_type),
    (40, Generator::too_large),
    (30, Generator::lying_length),
    // HTTP itself.
    (30, Generator::random_bytes),
    (50, Generator::bad_request_line),
    (70, Generator::bad_headers),
    (40, Generator::bad_chunked),
    (25, Generator::pipelined),
    (25, Generator::incomplete),
    (15, Generator::other_protocol),
    (40, Generator::http2),
    // Routes.
    (40, Generator::unknown_path),
    (35, Generator::wrong_method),
    (10, Generator::health),
    (17, Generator::admin),
];

impl Generator {
    fn new(seed: u64, address: String) -> Self {
        Self {
            rng: Rng(seed),
            seed,
            now: chrono::Utc::now().timestamp(),
            address,
            originals: (0..THREADS).map(|_| Vec::new()).collect(),
        }
    }

    fn case(&mut self, index: usize) -> Case {
        let total: u32 = CLASSES.iter().map(|(w, _)| w).sum();
        let mut roll = self.rng.below(total as usize) as u32;
        let make = CLASSES
            .iter()
            .find(|(weight, _)| {
                if roll < *weight {
                    true
                } else {
                    roll -= weight;
                    false
                }
            })
            .map(|(_, make)| *make)
            .expect("a class");
        let mut case = make(self, index);
        case.index = index;
        if case.split.is_none() && self.rng.chance(5) && case.bytes.len() > 1 {
            case.split = Some(self.rng.between(1, case.bytes.len() - 1));
        }
        case
    }

    fn one(&self, class: &'static str, bytes: Vec<u8>, expect: Expect, body: Option<Vec<u8>>) -> Case {
        Case { index: 0, class, bytes, split: None, half_close: false, sent: vec![Sent { expect, body }] }
    }

    // -- building blocks ----------------------------------------------------

    fn marker(&self, index: usize) -> String {
        format!("fz-{:x}-{index}", self.seed)
    }

    fn key_value(&mut self, index: usize) -> String {
        match self.rng.below(20) {
            0..=12 => (index + 1).to_string(),
            13..=15 => json_str(&format!("K{index}")),
            _ => self
                .rng
                .pick(&[
                    "18446744073709551615",
                    "-9223372036854775808",
                    "0",
                    "-1",
                    // One row's key however it is written: these fold to 42 and "mixed".
                    "\" 0042 \"",
                    "\"MiXeD \"",
                    "\"a'b\\\"c; --\"",
                    "\"😀\"",
                    "\"１２３\"",
                    "\"9223372036854775808\"",
                    "\"\\u0000\"",
                ])
                .to_string(),
        }
    }

    fn value(&mut self) -> String {
        match self.rng.below(10) {
            0..=4 => json_str(self.rng.one_of(HOSTILE_TEXT)),
            5..=7 => self.rng.pick(RAW_VALUES).to_string(),
            8 => json_str(&"x".repeat(self.rng.between(100, 1500))),
            _ => json_str(&"é😀".repeat(self.rng.between(10, 200))),
        }
    }

    /// `{...}` from raw member texts, compact or spread out.
    fn object(&mut self, members: &[(String, String)]) -> Vec<u8> {
        let spread = self.rng.chance(15);
        let (open, sep, colon, close) = if spread { ("{\n  ", ",\n  ", ": ", "\n}") } else { ("{", ", ", ": ", "}") };
        let inner: Vec<String> = members.iter().map(|(k, v)| format!("{k}{colon}{v}")).collect();
        let mut text = format!("{open}{}{close}", inner.join(sep));
        if self.rng.chance(5) {
            text = format!(" \n\t{text}\r\n ");
        }
        text.into_bytes()
    }

    /// The members of a valid event of a mapped type.
    fn mapped_members(&mut self, index: usize) -> Vec<(String, String)> {
        let key = self.key_value(index);
        let mut members = match self.rng.below(3) {
            0 => vec![
                ("\"event_type\"".to_string(), "\"appointment\"".to_string()),
                ("\"appointment_id\"".to_string(), key),
                ("\"status\"".to_string(), self.value()),
            ],
            1 => vec![
                ("\"event_type\"".to_string(), "\"schedule_change\"".to_string()),
                ("\"schedule_id\"".to_string(), key),
                ("\"new_time\"".to_string(), self.value()),
            ],
            _ => vec![
                ("\"event_type\"".to_string(), "\"payment\"".to_string()),
                ("\"payment_id\"".to_string(), key),
                ("\"amount\"".to_string(), self.value()),
                ("\"status\"".to_string(), self.value()),
                ("\"paid_at\"".to_string(), self.value()),
            ],
        };
        members.push(("\"nonce\"".to_string(), json_str(&self.marker(index))));
        for _ in 0..self.rng.below(4) {
            let key = self.rng.pick(ODD_KEYS).to_string();
            let value = self.value();
            members.push((key, value));
        }
        let n = members.len();
        // Order does not matter to JSON.
        for i in (1..n).rev() {
            members.swap(i, self.rng.below(i + 1));
        }
        members
    }

    fn mapped_body(&mut self, index: usize) -> Vec<u8> {
        for _ in 0..10 {
            let members = self.mapped_members(index);
            let body = self.object(&members);
            if body.len() <= MAX_BODY {
                return body;
            }
        }
        format!(
            r#"{{"event_type": "appointment", "appointment_id": {}, "nonce": "{}"}}"#,
            index + 1,
            self.marker(index)
        )
        .into_bytes()
    }

    fn unmapped_body(&mut self, index: usize) -> Vec<u8> {
        let mut members = vec![
            ("\"event_type\"".to_string(), json_str(self.rng.one_of(UNMAPPED_TYPES))),
            ("\"nonce\"".to_string(), json_str(&self.marker(index))),
        ];
        if self.rng.chance(50) {
            members.push(("\"data\"".to_string(), self.value()));
        }
        self.object(&members)
    }

    fn header_name(&mut self, name: &str) -> String {
        match self.rng.below(10) {
            0 => name.to_ascii_lowercase(),
            1 => name.to_ascii_uppercase(),
            _ => name.to_string(),
        }
    }

    /// Host, Content-Type, Content-Length and Connection: close, plus
    /// `extra`, in a random order.
    fn headers(
        &mut self,
        content_type: Option<&[u8]>,
        body_len: usize,
        close: bool,
        extra: Vec<Header>,
    ) -> Vec<Header> {
        let mut headers = vec![(self.header_name("Host"), self.address.clone().into_bytes())];
        if let Some(content_type) = content_type {
            headers.push((self.header_name("Content-Type"), content_type.to_vec()));
        }
        headers.push((self.header_name("Content-Length"), body_len.to_string().into_bytes()));
        if close {
            headers.push((self.header_name("Connection"), b"close".to_vec()));
        }
        headers.extend(extra);
        let n = headers.len();
        for i in (1..n).rev() {
            headers.swap(i, self.rng.below(i + 1));
        }
        headers
    }

    fn timestamp(&mut self) -> i64 {
        self.now + self.rng.between(0, 240) as i64 - 120
    }

    /// Valid Standard Webhooks headers for `body`.
    fn sign(&mut self, id: &str, body: &[u8]) -> Vec<Header> {
        let timestamp = self.timestamp();
        let key = if self.rng.chance(80) { SECRET } else { OLD_SECRET };
        let good = signature(key, id, timestamp, body);
        let value = match self.rng.below(10) {
            0 => format!("{} {good}", signature(UNKNOWN_SECRET, id, timestamp, body)),
            1 => format!("v2,abc v1a,xyz {good}"),
            2 => format!("{good}  {}", signature(OLD_SECRET, id, timestamp + 1, body)),
            _ => good,
        };
        vec![
            (self.header_name("webhook-id"), id.as_bytes().to_vec()),
            (self.header_name("webhook-timestamp"), timestamp.to_string().into_bytes()),
            (self.header_name("webhook-signature"), value.into_bytes()),
        ]
    }

    fn webhook_id(&self, index: usize) -> String {
        format!("msg_fz{:x}_{index}", self.seed)
    }

    /// A complete POST of `body` as JSON, with `extra` headers.
    fn json_post(&mut self, body: &[u8], extra: Vec<Header>) -> Vec<u8> {
        let headers = self.headers(Some(b"application/json"), body.len(), true, extra);
        render("POST /receive-event HTTP/1.1", &headers, body)
    }

    /// A complete signed POST of `body`.
    fn signed_post(&mut self, index: usize, body: &[u8]) -> Vec<u8> {
        let id = self.webhook_id(index);
        let auth = self.sign(&id, body);
        self.json_post(body, auth)
    }

    /// A POST of `encoded`, a chunked body, with `auth` (headers in order).
    fn chunked_post(&self, auth: Vec<Header>, encoded: &[u8]) -> Vec<u8> {
        let mut headers = vec![
            header("Host", &self.address),
            header("Content-Type", "application/json"),
            header("Transfer-Encoding", "chunked"),
            header("Connection", "close"),
        ];
        headers.extend(auth);
        render("POST /receive-event HTTP/1.1", &headers, encoded)
    }

    fn with_auth(&mut self, class: &'static str, body: Vec<u8>, auth: Vec<Header>, expect: Expect) -> Case {
        let bytes = self.json_post(&body, auth);
        self.one(class, bytes, expect, Some(body))
    }

    fn signed(&mut self, class: &'static str, index: usize, body: Vec<u8>, expect: Expect) -> Case {
        let bytes = self.signed_post(index, &body);
        self.one(class, bytes, expect, Some(body))
    }

    /// A signed event that a later duplicate may send again.
    fn signed_original(&mut self, class: &'static str, index: usize, body: Vec<u8>, expect: Expect) -> Case {
        self.remember(index, self.webhook_id(index), true, body.clone());
        self.signed(class, index, body, expect)
    }

    fn remember(&mut self, index: usize, delivery_id: String, signed: bool, body: Vec<u8>) {
        self.originals[index % THREADS].push(Original { case: index, delivery_id, signed, body });
    }

    // -- valid events ---------------------------------------------------------

    fn valid_signed(&mut self, index: usize) -> Case {
        let body = self.mapped_body(index);
        self.signed_original("valid_signed", index, body, Expect::Accepted)
    }

    fn valid_unmapped(&mut self, index: usize) -> Case {
        let body = self.unmapped_body(index);
        self.signed_original("valid_unmapped", index, body, Expect::Unmapped)
    }

    fn valid_bearer(&mut self, index: usize) -> Case {
        let mut members = self.mapped_members(index);
        let event_id = format!("evt_fz{:x}_{index}", self.seed);
        let delivery_id = if self.rng.chance(70) {
            let value =
                if self.rng.chance(30) { (index as u64 + 10_000_000_000).to_string() } else { json_str(&event_id) };
            let event_id = if value.starts_with('"') { event_id } else { value.clone() };
            members.push(("\"event_id\"".to_string(), value));
            Some(event_id)
        } else {
            if self.rng.chance(50) {
                members.push(("\"event_id\"".to_string(), "null".to_string()));
            }
            None
        };
        let body = self.object(&members);
        if let Some(delivery_id) = delivery_id {
            self.remember(index, delivery_id, false, body.clone());
        }
        // The scheme's name is case-insensitive (RFC 9110).
        let scheme = self.rng.pick(&["Bearer", "bearer", "BEARER"]);
        self.with_auth(
            "valid_bearer",
            body,
            vec![header("Authorization", format!("{scheme} {BEARER}"))],
            Expect::Accepted,
        )
    }

    /// Sends an earlier accepted event of this thread again, with the same
    /// delivery id: the same body or another valid one.
    fn duplicate(&mut self, index: usize) -> Case {
        let thread = index % THREADS;
        if self.originals[thread].is_empty() {
            return self.valid_signed(index);
        }
        let pick = self.rng.below(self.originals[thread].len());
        let (case, delivery_id, signed, original_body) = {
            let o = &self.originals[thread][pick];
            (o.case, o.delivery_id.clone(), o.signed, o.body.clone())
        };
        let body = if self.rng.chance(60) { original_body } else { self.mapped_body(index) };
        if signed && self.rng.chance(85) {
            let auth = self.sign(&delivery_id, &body);
            return self.with_auth("duplicate", body, auth, Expect::Duplicate(case));
        }
        // By bearer token, with the delivery id in the event_id field (for
        // a signed original: the same id from the other source).
        let id_value =
            if delivery_id.starts_with(|c: char| c.is_ascii_digit()) { delivery_id } else { json_str(&delivery_id) };
        self.with_auth("duplicate", with_event_id(body, &id_value), bearer(), Expect::Duplicate(case))
    }

    /// Valid events in unusual but legal framing.
    fn valid_odd_framing(&mut self, index: usize) -> Case {
        let class = "valid_odd_framing";
        let body = self.mapped_body(index);
        let id = self.webhook_id(index);
        let auth = self.sign(&id, &body);
        let variant = self.rng.below(15);
        let mut expect = Expect::Accepted;
        let bytes = match variant {
            0 => {
                // Chunked, in chunks of any size.
                let size = self.rng.between(1, 700);
                self.chunked_post(auth, &chunked(&body, size))
            }
            1 => {
                let headers = self.headers(Some(b"application/json"), body.len(), false, auth);
                render("POST /receive-event HTTP/1.0", &headers, &body)
            }
            2 => {
                // Keep-alive: the connection stays open after the answer.
                let headers = self.headers(Some(b"application/json"), body.len(), false, auth);
                render("POST /receive-event HTTP/1.1", &headers, &body)
            }
            3 => {
                let mut extra = auth;
                extra.push(header("Expect", "100-continue"));
                self.json_post(&body, extra)
            }
            4 => {
                let content_type = *self.rng.pick(&[
                    "application/json; charset=utf-8",
                    "APPLICATION/JSON",
                    "Application/Json ; charset=\"UTF-8\"",
                    "application/cloudevents+json",
                    "application/vnd.buktor.event+json; version=2",
                    "application/json;;;",
                    "application/json; charset=latin1",
                ]);
                let headers = self.headers(Some(content_type.as_bytes()), body.len(), true, auth);
                render("POST /receive-event HTTP/1.1", &headers, &body)
            }
            5 => {
                let query = *self.rng.pick(&["?", "?a=1", "?event_type=x&x=%00", "?;DROP%20TABLE", "?a=%zz"]);
                let headers = self.headers(Some(b"application/json"), body.len(), true, auth);
                render(&format!("POST /receive-event{query} HTTP/1.1"), &headers, &body)
            }
            6 => {
                // Absolute form: hyper takes the path from it.
                expect = Expect::Any;
                let headers = self.headers(Some(b"application/json"), body.len(), true, auth);
                render(&format!("POST http://{}/receive-event HTTP/1.1", self.address), &headers, &body)
            }
            7 => {
                // Nesting exactly at the limit.
                let depth = MAX_DEPTH - 1;
                let body = format!(
                    r#"{{"event_type": "appointment", "appointment_id": {}, "nonce": "{}", "deep": {}1{}}}"#,
                    index + 1,
                    self.marker(index),
                    "[".repeat(depth),
                    "]".repeat(depth)
                )
                .into_bytes();
                return self.signed(class, index, body, Expect::Accepted);
            }
            8 => {
                // Members exactly at the limit.
                let extra: Vec<String> = (0..MAX_MEMBERS - 3).map(|i| format!("\"m{i}\": {i}")).collect();
                let body = format!(
                    r#"{{"event_type": "payment", "payment_id": {}, "nonce": "{}", {}}}"#,
                    index + 1,
                    self.marker(index),
                    extra.join(",")
                )
                .into_bytes();
                return self.signed(class, index, body, Expect::Accepted);
            }
            9 => {
                // A body of exactly max_body_bytes.
                let head = format!(
                    r#"{{"event_type": "appointment", "appointment_id": {}, "nonce": "{}", "pad": ""#,
                    index + 1,
                    self.marker(index)
                );
                let mut body = head.into_bytes();
                body.resize(MAX_BODY - 2, b'p');
                body.extend_from_slice(b"\"}");
                return self.signed(class, index, body, Expect::Accepted);
            }
            10 => {
                // A webhook-id of the longest length allowed, in printable ASCII.
                let charset: Vec<char> = (0x21u8..0x7f).map(char::from).collect();
                let tail: String = (0..256 - 16).map(|_| *self.rng.pick(&charset)).collect();
                let id = format!("{index:0>16}{tail}");
                let auth = self.sign(&id, &body);
                self.json_post(&body, auth)
            }
            11 => {
                // A bearer token wins over signature headers that are wrong.
                let mut extra = bearer();
                extra.push(header("webhook-id", &id));
                extra.push(header("webhook-timestamp", "0"));
                extra.push(header("webhook-signature", "v1,!!!"));
                self.json_post(&body, extra)
            }
            12 => {
                // Two valid events in one write (pipelined).
                let second = self.mapped_body(index + 1_000_000);
                let second_id = format!("{id}_b");
                let second_auth = self.sign(&second_id, &second);
                let first_headers = self.headers(Some(b"application/json"), body.len(), false, auth);
                let second_headers = self.headers(Some(b"application/json"), second.len(), true, second_auth);
                let mut bytes = render("POST /receive-event HTTP/1.1", &first_headers, &body);
                bytes.extend(render("POST /receive-event HTTP/1.1", &second_headers, &second));
                return Case {
                    index,
                    class,
                    bytes,
                    split: None,
                    half_close: false,
                    sent: vec![
                        Sent { expect: Expect::Accepted, body: Some(body) },
                        Sent { expect: Expect::Accepted, body: Some(second) },
                    ],
                };
            }
            13 => {
                // Headers split in many small writes: the split point does it.
                let bytes = self.json_post(&body, auth);
                let split = Some(self.rng.between(1, 40));
                return Case { split, ..self.one(class, bytes, Expect::Accepted, Some(body)) };
            }
            _ => {
                // Extra harmless headers, some repeated, some unusual.
                let mut extra = auth;
                for _ in 0..self.rng.between(1, 30) {
                    let name =
                        *self.rng.pick(&["X-Forwarded-For", "User-Agent", "Accept", "X-Request-Id", "Cookie", "X-A"]);
                    let value = self.rng.pick(HOSTILE_TEXT).replace(['\r', '\n', '\0', '\u{b}', '\u{c}', '\u{8}'], "_");
                    let value = if value.is_ascii() { value } else { "ascii-only".to_string() };
                    extra.push(header(name, value));
                }
                self.json_post(&body, extra)
            }
        };
        if matches!(expect, Expect::Accepted) && variant != 10 {
            self.remember(index, id, true, body.clone());
        }
        self.one(class, bytes, expect, Some(body))
    }

    // -- signed, with a bad body ----------------------------------------------

    fn bad_json(&mut self, index: usize) -> Case {
        let valid = self.mapped_body(index);
        let trimmed = String::from_utf8(valid.clone()).expect("UTF-8").trim_end().as_bytes().to_vec();
        let body: Vec<u8> = match self.rng.below(14) {
            0 => trimmed[..self.rng.below(trimmed.len() - 1)].to_vec(),
            1 => {
                // Invalid UTF-8 inside a string.
                let bad = self.rng.one_of(&[
                    &b"\xff"[..],
                    b"\xc0\xaf",
                    b"\xed\xa0\x80",
                    b"\xf5\x80\x80\x80",
                    b"\xe2\x82",
                    b"\x80",
                ]);
                [&br#"{"event_type": "appointment", "appointment_id": 1, "status": "a"#[..], bad, b"b\"}"].concat()
            }
            2 => [&b"\xef\xbb\xbf"[..], &valid].concat(),
            3 => {
                let tail = self.rng.one_of(&[&b" x"[..], b"}", b",", b" {}", b"\x00", b" // comment", b"]"]);
                [&trimmed[..], tail].concat()
            }
            4 => b"".to_vec(),
            5 => self.rng.pick(&[&b" "[..], b"\r\n\t", b"\x00", b"\x00\x00\x00\x00"]).to_vec(),
            6 => br#"{"event_type": "appointment", "appointment_id": 1,}"#.to_vec(),
            7 => br#"{'event_type': 'appointment', 'appointment_id': 1}"#.to_vec(),
            8 => br#"{"event_type": "appointment", "appointment_id": NaN}"#.to_vec(),
            // 1e400 is valid JSON (numbers have no range); an exponent without digits is not.
            9 => br#"{"event_type": "appointment", "appointment_id": 1e+}"#.to_vec(),
            10 => br#"{"event_type": "appointment", "appointment_id": 01}"#.to_vec(),
            11 => b"{\"event_type\": \"appoint\nment\", \"appointment_id\": 1}".to_vec(),
            12 => b"{\"event_type\": \"appointment\", \"appointment_id\": 1, \"s\": \"\x00\"}".to_vec(),
            _ => br#"{"event_type": "appointment", "appointment_id": 1, "s": "\x41"}"#.to_vec(),
        };
        self.signed("bad_json", index, body, refused(400, "malformed_json"))
    }

    /// A valid body with random damage: anything may come of it, but no 5xx.
    fn mutated_body(&mut self, index: usize) -> Case {
        let mut body = self.mapped_body(index);
        for _ in 0..self.rng.between(1, 4) {
            let at = self.rng.below(body.len());
            match self.rng.below(5) {
                0 => body[at] = self.rng.next() as u8,
                1 => body[at] = *self.rng.pick(b"{}[]:,\"\\ 0-e."),
                2 => {
                    body.remove(at);
                }
                3 => body.insert(at, *self.rng.pick(b"{}[]:,\"\\\x00\xff")),
                _ => {
                    let piece = *self.rng.pick(&[
                        &b"\\u0000"[..],
                        b"\\ud800",
                        b"\\udc00\\ud800",
                        b"\\u",
                        b"\\x",
                        b"\": {\"",
                        b"[[[[[[[[",
                        b"1e99999",
                    ]);
                    for (i, b) in piece.iter().enumerate() {
                        body.insert(at + i, *b);
                    }
                }
            }
            if body.is_empty() {
                break;
            }
        }
        self.signed("mutated_body", index, body, Expect::Any)
    }

    fn not_an_object(&mut self, index: usize) -> Case {
        let body = *self.rng.pick(&[
            "null",
            "true",
            "0",
            "-1.5e10",
            "\"appointment\"",
            "[]",
            "[{\"event_type\": \"appointment\", \"appointment_id\": 1}]",
            "  [1, 2, 3]  ",
            "\"{\\\"event_type\\\": \\\"appointment\\\"}\"",
        ]);
        self.signed("not_an_object", index, body.as_bytes().to_vec(), refused(422, "not_an_object"))
    }

    fn bad_event_type(&mut self, index: usize) -> Case {
        let (body, expect) = if self.rng.chance(30) {
            let mut members = self.mapped_members(index);
            members.retain(|(k, _)| k != "\"event_type\"");
            (self.object(&members), refused(422, "missing_event_type"))
        } else if self.rng.chance(15) {
            // A second, escaped event_type replaces the first.
            let invalid = self.rng.pick(INVALID_TYPES).to_string();
            let mut members = self.mapped_members(index);
            members.push(("\"event\\u005ftype\"".to_string(), invalid));
            members.retain(|(k, _)| k != "\"event_type\"");
            let mut first = vec![("\"event_type\"".to_string(), "\"appointment\"".to_string())];
            first.extend(members);
            (self.object(&first), refused(422, "invalid_event_type"))
        } else {
            let invalid = self.rng.pick(INVALID_TYPES).to_string();
            let mut members = self.mapped_members(index);
            for (k, v) in &mut members {
                if k == "\"event_type\"" {
                    *v = invalid.clone();
                }
            }
            (self.object(&members), refused(422, "invalid_event_type"))
        };
        self.signed("bad_event_type", index, body, expect)
    }

    fn bad_key(&mut self, index: usize) -> Case {
        let mut members = self.mapped_members(index);
        let key = members
            .iter()
            .position(|(k, _)| matches!(k.as_str(), "\"appointment_id\"" | "\"schedule_id\"" | "\"payment_id\""))
            .expect("a key field");
        let expect = match self.rng.below(3) {
            0 => {
                members.remove(key);
                refused(422, "missing_key")
            }
            1 => {
                members[key].1 = "null".into();
                refused(422, "missing_key")
            }
            2 if self.rng.below(4) == 0 => {
                members[key].1 = json_str(&"k".repeat(self.rng.between(257, 2000)));
                refused(422, "invalid_key")
            }
            _ => {
                members[key].1 = self.rng.pick(INVALID_KEYS).to_string();
                refused(422, "invalid_key")
            }
        };
        let body = self.object(&members);
        // Intake reads no number it does not need: 1E400000000000 anywhere
        // else is kept as sent, and as a key it is not an integer.
        self.signed("bad_key", index, body, expect)
    }

    fn too_deep(&mut self, index: usize) -> Case {
        let depth = self.rng.between(MAX_DEPTH, 2500);
        let (open, close) = match self.rng.below(4) {
            0 => ("[".repeat(depth), "]".repeat(depth)),
            1 => ("{\"a\":".repeat(depth), "}".repeat(depth)),
            2 => ("[{\"a\":".repeat(depth / 2 + 1), "}]".repeat(depth / 2 + 1)),
            _ => ("[".repeat(depth), String::new()),
        };
        let body =
            format!(r#"{{"event_type": "appointment", "appointment_id": 1, "deep": {open}1{close}}}"#).into_bytes();
        if body.len() > MAX_BODY {
            return self.too_large(index);
        }
        // The scan meets the depth limit long before the member limit.
        self.signed("too_deep", index, body, refused(400, "too_deep"))
    }

    fn too_many_members(&mut self, index: usize) -> Case {
        let count = self.rng.between(MAX_MEMBERS, 1000);
        let members: Vec<String> = match self.rng.below(3) {
            0 => (0..count).map(|i| format!("\"m{i}\": {i}")).collect(),
            1 => (0..count).map(|_| "\"same\": 1".to_string()).collect(),
            _ => (0..count).map(|i| format!("\"o{i}\": {{\"a\": 1}}")).collect(),
        };
        let body =
            format!(r#"{{"event_type": "appointment", "appointment_id": 1, {}}}"#, members.join(",")).into_bytes();
        if body.len() > MAX_BODY {
            return self.too_large(index);
        }
        self.signed("too_many_members", index, body, refused(400, "too_many_members"))
    }

    /// Many values in little nesting: arrays of empty arrays or numbers,
    /// which the member count does not see.
    fn array_bomb(&mut self, index: usize) -> Case {
        let count = self.rng.between(MAX_NODES, 4000);
        let element = *self.rng.pick(&["[]", "0", "{}", "\"\"", "[[]]"]);
        let elements = vec![element; count].join(",");
        let body = format!(r#"{{"event_type": "appointment", "appointment_id": 1, "x": [{elements}]}}"#).into_bytes();
        if body.len() > MAX_BODY {
            return self.too_large(index);
        }
        self.signed("array_bomb", index, body, refused(400, "too_many_nodes"))
    }

    fn bad_delivery_id(&mut self, index: usize) -> Case {
        let body = self.mapped_body(index);
        if self.rng.chance(50) {
            // Signed, with a webhook-id that is empty, blank or too long.
            let id = match self.rng.below(3) {
                0 => String::new(),
                1 => " \t ".to_string(),
                _ => "i".repeat(self.rng.between(257, 4000)),
            };
            let auth = self.sign(&id, &body);
            let expect = if id.is_empty() || id.len() > 256 {
                refused(422, "invalid_delivery_id")
            } else {
                // Blank: the header value may reach the server trimmed, so
                // the signature may not match the id it sees.
                some_refusal()
            };
            return self.with_auth("bad_delivery_id", body, auth, expect);
        }
        // By bearer token, with an event_id that is not a usable id.
        let value = self.rng.pick(&["\"\"", "\"   \"", "1.5", "true", "[]", "{}", "[\"a\"]", "-0.5e3"]).to_string();
        let value = if self.rng.chance(20) { json_str(&"e".repeat(257)) } else { value };
        self.with_auth("bad_delivery_id", with_event_id(body, &value), bearer(), refused(422, "invalid_delivery_id"))
    }

    // -- not signed, or wrongly ---------------------------------------------

    fn missing_credentials(&mut self, index: usize) -> Case {
        let body = self.mapped_body(index);
        let id = self.webhook_id(index);
        let mut auth = self.sign(&id, &body);
        match self.rng.below(4) {
            0 => auth.clear(),
            _ => {
                // One, or two, of the three headers missing.
                auth.remove(self.rng.below(3));
                if self.rng.chance(30) {
                    auth.remove(self.rng.below(2));
                }
            }
        }
        self.with_auth("missing_credentials", body, auth, refused(401, "missing_credentials"))
    }

    fn bad_timestamp(&mut self, index: usize) -> Case {
        let body = self.mapped_body(index);
        let id = self.webhook_id(index);
        let (timestamp, expect): (String, Expect) = match self.rng.below(4) {
            0 => {
                let t = *self.rng.pick(&[
                    "",
                    "abc",
                    "1.5",
                    "1e9",
                    "0x10",
                    "99999999999999999999",
                    "--1",
                    "12 34",
                    "now",
                    "\u{661}\u{662}",
                ]);
                (t.to_string(), refused(401, "malformed_signature"))
            }
            1 => {
                let far = TOLERANCE_SECS + self.rng.between(60, 100_000) as i64;
                let t = if self.rng.chance(50) { self.now - far } else { self.now + far };
                (t.to_string(), refused(401, "expired_signature"))
            }
            2 => {
                let t = *self.rng.pick(&[i64::MIN, i64::MIN + 1, i64::MIN / 2, -1, 0, i64::MAX, i64::MAX - 1]);
                let code = if t < 0 { "malformed_signature" } else { "expired_signature" };
                (t.to_string(), refused(401, code))
            }
            _ => {
                // Other spellings of a good time: only the canonical one is
                // signed text (trailing white space is trimmed by HTTP).
                let t = self.timestamp();
                match self.rng.below(3) {
                    0 => (format!("+{t}"), refused(401, "malformed_signature")),
                    1 => (format!("000{t}"), refused(401, "malformed_signature")),
                    _ => (format!("{t}\t"), Expect::Any),
                }
            }
        };
        let number = timestamp.trim().parse::<i64>().unwrap_or(self.now);
        let auth = vec![
            header("webhook-id", &id),
            header("webhook-timestamp", &timestamp),
            header("webhook-signature", signature(SECRET, &id, number, &body)),
        ];
        self.with_auth("bad_timestamp", body, auth, expect)
    }

    fn bad_signature(&mut self, index: usize) -> Case {
        let body = self.mapped_body(index);
        let id = self.webhook_id(index);
        let t = self.timestamp();
        let good = signature(SECRET, &id, t, &body);
        let (value, expect): (Vec<u8>, Expect) = match self.rng.below(14) {
            0 => (b"".to_vec(), refused(401, "malformed_signature")),
            1 => (b"v1,!!!not base64".to_vec(), refused(401, "malformed_signature")),
            2 => (format!("v2,{}", &good[3..]).into_bytes(), refused(401, "malformed_signature")),
            3 => (format!("v1,%%% {good}").into_bytes(), refused(401, "malformed_signature")),
            4 => (format!("v1,{}", BASE64.encode(self.rng.bytes(32))).into_bytes(), refused(401, "bad_signature")),
            5 => (signature(UNKNOWN_SECRET, &id, t, &body).into_bytes(), refused(401, "bad_signature")),
            6 => (signature(SECRET, &format!("{id}x"), t, &body).into_bytes(), refused(401, "bad_signature")),
            7 => (signature(SECRET, &id, t + 1, &body).into_bytes(), refused(401, "bad_signature")),
            8 => {
                let mut other = body.clone();
                other.push(b' ');
                (signature(SECRET, &id, t, &other).into_bytes(), refused(401, "bad_signature"))
            }
            9 => {
                let n = self.rng.between(0, 64);
                (format!("v1,{}", BASE64.encode(self.rng.bytes(n))).into_bytes(), refused(401, "bad_signature"))
            }
            10 => {
                let many: Vec<String> = (0..self.rng.between(100, 3000))
                    .map(|_| format!("v1,{}", BASE64.encode(self.rng.bytes(32))))
                    .collect();
                (many.join(" ").into_bytes(), refused(401, "bad_signature"))
            }
            11 => (format!("v1,{}\u{e9}", &good[3..]).into_bytes(), refused(401, "malformed_signature")),
            // Still base64, or not (the last symbol's spare bits).
            12 => (good.to_lowercase().into_bytes(), Expect::Refused { status: Some(401), code: None, closed: false }),
            _ => (format!("V1,{}", &good[3..]).into_bytes(), refused(401, "malformed_signature")),
        };
        let mut auth = vec![
            header("webhook-id", &id),
            header("webhook-timestamp", t.to_string()),
            header("webhook-signature", value),
        ];
        if self.rng.chance(10) {
            // A non-ASCII id: not text for the server.
            auth[0].1 = format!("{id}\u{e9}").into_bytes();
            return self.with_auth("bad_signature", body, auth, refused(401, "malformed_signature"));
        }
        self.with_auth("bad_signature", body, auth, expect)
    }

    fn bad_bearer(&mut self, index: usize) -> Case {
        let body = self.mapped_body(index);
        let (value, expect): (Vec<u8>, Expect) = match self.rng.below(9) {
            0 => (format!("Bearer {BEARER}x").into_bytes(), refused(401, "bad_token")),
            1 => (b"Bearer wrong".to_vec(), refused(401, "bad_token")),
            2 => (format!("Bearer  {BEARER}").into_bytes(), refused(401, "bad_token")),
            3 => (format!("Bearerx {BEARER}").into_bytes(), refused(401, "malformed_signature")),
            4 => (format!("Basic {}", BASE64.encode(b"user:pass")).into_bytes(), refused(401, "malformed_signature")),
            5 => (b"Bearer".to_vec(), refused(401, "malformed_signature")),
            6 => (format!("Bearer {}", &BEARER[..BEARER.len() - 1]).into_bytes(), refused(401, "bad_token")),
            7 => (format!("Bearer {BEARER}\u{e9}").into_bytes(), refused(401, "malformed_signature")),
            _ => (format!("Bearer {}", "A".repeat(self.rng.between(1, 8000))).into_bytes(), refused(401, "bad_token")),
        };
        self.with_auth("bad_bearer", body, vec![header("Authorization", value)], expect)
    }

    // -- content type and size ------------------------------------------------

    fn bad_content_type(&mut self, index: usize) -> Case {
        let body = self.mapped_body(index);
        let id = self.webhook_id(index);
        let auth = self.sign(&id, &body);
        let content_type: Option<Vec<u8>> = match self.rng.below(14) {
            0 => None,
            1 => Some(b"".to_vec()),
            2 => Some(b"text/plain".to_vec()),
            3 => Some(b"application/x-www-form-urlencoded".to_vec()),
            4 => Some(b"application/jsonp".to_vec()),
            5 => Some(b"application/json, text/plain".to_vec()),
            6 => Some(b"json".to_vec()),
            7 => Some(b"text/json".to_vec()),
            8 => Some(b"multipart/form-data; boundary=x".to_vec()),
            9 => Some("application/json\u{e9}".as_bytes().to_vec()),
            10 => Some(b"application/xml".to_vec()),
            11 => Some(b"*/*".to_vec()),
            12 => Some(b"application/".to_vec()),
            _ => Some("a".repeat(self.rng.between(100, 6000)).into_bytes()),
        };
        let headers = self.headers(content_type.as_deref(), body.len(), true, auth);
        self.one(
            "bad_content_type",
            render("POST /receive-event HTTP/1.1", &headers, &body),
            refused(415, "unsupported_content_type"),
            Some(body),
        )
    }

    fn too_large(&mut self, index: usize) -> Case {
        let size = self.rng.between(MAX_BODY + 1, MAX_BODY * 4);
        let mut body = br#"{"event_type": "appointment", "appointment_id": 1, "pad": ""#.to_vec();
        body.resize(size - 2, b'x');
        body.extend_from_slice(b"\"}");
        let id = self.webhook_id(index);
        let auth = if self.rng.chance(50) { self.sign(&id, &body) } else { Vec::new() };
        // Without credentials the body is never read: 401 before 413.
        let expect = if auth.is_empty() {
            refused_or_closed(401, "missing_credentials")
        } else {
            refused_or_closed(413, "body_too_large")
        };
        match self.rng.below(4) {
            0 => {
                // Declared, and sent.
                self.with_auth("too_large", body, auth, expect)
            }
            1 => {
                // Declared; not sent at all.
                let declared = *self.rng.pick(&[MAX_BODY + 1, 1 << 30, usize::MAX >> 1]);
                let headers = self.headers(Some(b"application/json"), declared, true, auth);
                let bytes = render("POST /receive-event HTTP/1.1", &headers, b"");
                Case { half_close: self.rng.chance(50), ..self.one("too_large", bytes, expect, None) }
            }
            _ => {
                // Chunked, so only counting can tell.
                let size = self.rng.between(100, 9000);
                let bytes = self.chunked_post(auth, &chunked(&body, size));
                self.one("too_large", bytes, expect, Some(body))
            }
        }
    }

    fn lying_length(&mut self, index: usize) -> Case {
        let body = self.mapped_body(index);
        let id = self.webhook_id(index);
        let auth = self.sign(&id, &body);
        if self.rng.chance(50) {
            // Shorter than the body: the rest reads as the next request.
            let declared = self.rng.below(body.len());
            let close = self.rng.chance(50);
            let headers = self.headers(Some(b"application/json"), declared, close, auth);
            let mut case =
                self.one("lying_length", render("POST /receive-event HTTP/1.1", &headers, &body), not_stored(), None);
            case.sent.push(Sent { expect: not_stored(), body: None });
            // The rest may be a head without its end: let the server see
            // that nothing more comes.
            case.half_close = true;
            return case;
        }
        // Longer than the body, and the sender stops: the body is cut off.
        let declared = body.len() + self.rng.between(1, 5000);
        let headers = self.headers(Some(b"application/json"), declared, true, auth);
        let expect = if declared > MAX_BODY {
            refused_or_closed(413, "body_too_large")
        } else {
            refused_or_closed(400, "body_unreadable")
        };
        let bytes = render("POST /receive-event HTTP/1.1", &headers, &body);
        Case { half_close: true, ..self.one("lying_length", bytes, expect, None) }
    }

    // -- HTTP itself ----------------------------------------------------------

    fn random_bytes(&mut self, _index: usize) -> Case {
        let n = self.rng.between(0, 3000);
        let bytes = match self.rng.below(3) {
            0 => self.rng.bytes(n),
            1 => (0..n).map(|_| *self.rng.pick(b"GETPOST /\r\n:HTTP1.0abc \t{}\"")).collect(),
            _ => {
                let mut bytes = b"POST /receive-event HTTP/1.1\r\n".to_vec();
                bytes.extend(self.rng.bytes(n));
                bytes
            }
        };
        Case { half_close: true, ..self.one("random_bytes", bytes, not_stored(), None) }
    }

    fn bad_request_line(&mut self, index: usize) -> Case {
        let body = self.mapped_body(index);
        let line: Vec<u8> = match self.rng.below(16) {
            0 => b"POST /receive-event".to_vec(),
            1 => b"POST /receive-event HTTP/2.0".to_vec(),
            2 => b"POST /receive-event HTTP/9.9".to_vec(),
            3 => b"POST /receive-event http/1.1".to_vec(),
            4 => b"POST  /receive-event  HTTP/1.1".to_vec(),
            5 => b"POST\t/receive-event\tHTTP/1.1".to_vec(),
            6 => b"POST /receive\x00event HTTP/1.1".to_vec(),
            7 => "POST /r\u{e9}ceive-event HTTP/1.1".as_bytes().to_vec(),
            8 => format!("POST /{} HTTP/1.1", "a".repeat(self.rng.between(1000, 100_000))).into_bytes(),
            9 => b"POST /receive-event HTTP/1.1 extra".to_vec(),
            10 => b" POST /receive-event HTTP/1.1".to_vec(),
            11 => b"POST receive-event HTTP/1.1".to_vec(),
            12 => b"\r\n\r\nPOST /receive-event HTTP/1.1".to_vec(),
            13 => b"P\x7fST /receive-event HTTP/1.1".to_vec(),
            14 => b"POST /receive-event HTTP/1.1\rX: y".to_vec(),
            _ => b"HTTP/1.1 200 OK".to_vec(),
        };
        let headers = self.headers(Some(b"application/json"), body.len(), true, Vec::new());
        let mut bytes = line;
        bytes.extend(render("", &headers, &body));
        Case { half_close: true, ..self.one("bad_request_line", bytes, not_stored(), None) }
    }

    /// A signed, valid event with one thing wrong (or merely odd) in its
    /// head. What a lenient parser accepts is fine (`Any`, the body is
    /// known); what it cannot read must store nothing.
    fn bad_headers(&mut self, index: usize) -> Case {
        let body = self.mapped_body(index);
        let id = self.webhook_id(index);
        let auth = self.sign(&id, &body);
        let mut headers = self.headers(Some(b"application/json"), body.len(), true, auth);
        let mut lines: Vec<Vec<u8>> = Vec::new();
        // Every one is complete (never half-closed, which could drop the
        // answer to a request the server reads leniently and stores).
        let mut expect = not_stored();
        match self.rng.below(22) {
            0 => lines.push(b"No colon here".to_vec()),
            1 => lines.push(b"Space-Before-Colon : x".to_vec()),
            2 => lines.push(b"X-Folded: a\r\n continued".to_vec()),
            3 => lines.push(b"Bad\x01Name: x".to_vec()),
            4 => lines.push("N\u{e9}me: x".as_bytes().to_vec()),
            5 => lines.push(b": empty name".to_vec()),
            // Many headers, or a huge one: within the server's limits they
            // are merely large.
            6 => {
                for i in 0..self.rng.between(50, 400) {
                    lines.push(format!("X-Many-{i}: {i}").into_bytes());
                }
                expect = Expect::Any;
            }
            7 => {
                lines.push(format!("X-Huge: {}", "h".repeat(self.rng.between(10_000, 600_000))).into_bytes());
                expect = Expect::Any;
            }
            8 => lines.push(format!("Content-Length: {}", body.len() + 1).into_bytes()),
            9 => {
                lines.push(format!("Content-Length: {}", body.len()).into_bytes());
                expect = Expect::Any;
            }
            10 => {
                headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-length"));
                let value = *self.rng.pick(&[
                    "-1",
                    "abc",
                    "+5",
                    "1 2",
                    "0x10",
                    "99999999999999999999999",
                    "",
                    " ",
                    "1,1",
                    "\u{663}",
                ]);
                lines.push(format!("Content-Length: {value}").into_bytes());
            }
            11 => lines.push(b"Transfer-Encoding: chunked".to_vec()),
            12 => {
                let te = *self.rng.pick(&[
                    "gzip",
                    "chunked, gzip",
                    "xchunked",
                    "identity",
                    "chunked\r\nTransfer-Encoding: chunked",
                ]);
                lines.push(format!("Transfer-Encoding: {te}").into_bytes());
            }
            13 => lines.push(b"X-Injected: a\rContent-Length: 0".to_vec()),
            14 => lines.push(b"X-Injected: a\nContent-Length: 0".to_vec()),
            15 => lines.push(b"X-Nul: a\x00b".to_vec()),
            16 => lines.push(b"X-Bare-LF: a\n\nGET /health HTTP/1.1".to_vec()),
            17 => {
                lines.push(b"Connection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13".to_vec());
                expect = Expect::Any;
            }
            18 => {
                lines.push(self.rng.pick(&[&b"Expect: 200-ok"[..], b"Expect: 100-continue, 100-continue"]).to_vec());
                expect = Expect::Any;
            }
            19 => {
                // The whole head with bare LF line ends.
                let head = render("POST /receive-event HTTP/1.1", &headers, b"");
                let mut bytes = String::from_utf8(head).expect("ASCII head").replace("\r\n", "\n").into_bytes();
                bytes.extend_from_slice(&body);
                return self.one("bad_headers", bytes, Expect::Any, Some(body));
            }
            20 => {
                // The signature headers again, with other values: the
                // server reads the first.
                lines.push(format!("webhook-id: {id}-other").into_bytes());
                lines.push(b"webhook-signature: v1,AAAA".to_vec());
                expect = Expect::Any;
            }
            _ => {
                lines.push(format!("Host: {}", "x".repeat(self.rng.between(1, 5000))).into_bytes());
                expect = Expect::Any;
            }
        }
        // The odd lines go after the others, before the empty line.
        let mut bytes = render("POST /receive-event HTTP/1.1", &headers, b"");
        bytes.truncate(bytes.len() - 2);
        for line in lines {
            bytes.extend(line);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(&body);
        self.one("bad_headers", bytes, expect, Some(body))
    }

    fn bad_chunked(&mut self, index: usize) -> Case {
        let body = self.mapped_body(index);
        let id = self.webhook_id(index);
        let auth = self.sign(&id, &body);
        let good = chunked(&body, self.rng.between(1, 500));
        // Broken framing stores nothing; odd but readable framing may be
        // read leniently, and then the body is the signed one.
        // One chunk of the whole body: its size line, the body, what follows.
        let len = body.len();
        let one_chunk = |size_line: String, tail: &[u8]| [size_line.as_bytes(), &body, tail].concat();
        let (encoded, expect): (Vec<u8>, Expect) = match self.rng.below(10) {
            0 => (good[..self.rng.below(good.len() - 1)].to_vec(), not_stored()),
            1 => (format!("zz\r\n{}\r\n0\r\n\r\n", String::from_utf8_lossy(&body)).into_bytes(), not_stored()),
            2 => (one_chunk("ffffffffffffffffffff\r\n".into(), b""), not_stored()),
            3 => (one_chunk(format!("{len:x}\r\n"), b"0\r\n\r\n"), not_stored()),
            4 => {
                let extensions = "ext=".repeat(self.rng.between(10, 20_000));
                (one_chunk(format!("{len:x};{extensions}\r\n"), b"\r\n0\r\n\r\n"), Expect::Any)
            }
            5 => (one_chunk(format!("{:x}\r\n", len + 10), b"\r\n0\r\n\r\n"), not_stored()),
            6 => {
                let mut e = good.clone();
                e.truncate(e.len() - 2);
                e.extend_from_slice(b"X-Trailer: \x00\r\nContent-Length: 5\r\n\r\n");
                (e, Expect::Any)
            }
            7 => (one_chunk(format!("-{len:x}\r\n"), b"\r\n0\r\n\r\n"), not_stored()),
            8 => (one_chunk(format!("{len:x}\n"), b"\n0\n\n"), Expect::Any),
            _ => (one_chunk(format!(" {len:x} \r\n"), b"\r\n0\r\n\r\n"), Expect::Any),
        };
        let half_close = matches!(expect, Expect::NotStored { .. });
        let bytes = self.chunked_post(auth, &encoded);
        Case { half_close, ..self.one("bad_chunked", bytes, expect, Some(body)) }
    }

    fn pipelined(&mut self, index: usize) -> Case {
        let mut bytes = Vec::new();
        let mut sent = Vec::new();
        let count = self.rng.between(2, 6);
        for n in 0..count {
            let last = n + 1 == count;
            let body = self.mapped_body(index);
            match self.rng.below(5) {
                0 => {
                    let headers = self.headers(Some(b"application/json"), body.len(), last, Vec::new());
                    bytes.extend(render("POST /receive-event HTTP/1.1", &headers, &body));
                    sent.push(Sent { expect: refused(401, "missing_credentials"), body: None });
                }
                1 => {
                    let headers = self.headers(None, 0, last, Vec::new());
                    bytes.extend(render("GET /health HTTP/1.1", &headers, b""));
                    sent.push(Sent { expect: Expect::Status(200), body: None });
                }
                2 => {
                    let headers = self.headers(None, 0, last, Vec::new());
                    bytes.extend(render("GET /nowhere HTTP/1.1", &headers, b""));
                    sent.push(Sent { expect: refused(404, "not_found"), body: None });
                }
                3 => {
                    // CL.TE smuggling: both framings, different lengths.
                    let smuggled = b"0\r\n\r\nPOST /receive-event HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
                    let mut headers = vec![
                        header("Host", &self.address),
                        header("Content-Type", "application/json"),
                        header("Content-Length", smuggled.len().to_string()),
                        header("Transfer-Encoding", "chunked"),
                    ];
                    if last {
                        headers.push(header("Connection", "close"));
                    }
                    bytes.extend(render("POST /receive-event HTTP/1.1", &headers, smuggled));
                    sent.push(Sent { expect: not_stored(), body: None });
                    sent.push(Sent { expect: not_stored(), body: None });
                }
                _ => {
                    let n = self.rng.between(1, 200);
                    let mut garbage = self.rng.bytes(n);
                    garbage.extend_from_slice(b"\r\n\r\n");
                    bytes.extend(garbage);
                    sent.push(Sent { expect: not_stored(), body: None });
                }
            }
        }
        // After a refusal hyper may close the connection, so any later
        // request may go unanswered.
        for s in &mut sent {
            s.expect = match s.expect {
                Expect::Refused { status, code, .. } => Expect::Refused { status, code, closed: true },
                _ => not_stored(),
            };
        }
        Case { index, class: "pipelined", bytes, split: None, half_close: true, sent }
    }

    fn incomplete(&mut self, index: usize) -> Case {
        let body = self.mapped_body(index);
        let full = self.signed_post(index, &body);
        let cut = self.rng.below(full.len() - 1);
        Case { half_close: true, ..self.one("incomplete", full[..cut].to_vec(), not_stored(), None) }
    }

    fn other_protocol(&mut self, _index: usize) -> Case {
        let bytes: Vec<u8> = match self.rng.below(6) {
            0 => b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00".to_vec(),
            1 => {
                let mut hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec();
                hello.extend(self.rng.bytes(300));
                hello
            }
            2 => b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(),
            3 => b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n".to_vec(),
            4 => b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n".to_vec(),
            _ => b"*1\r\n$4\r\nPING\r\n".to_vec(),
        };
        Case { half_close: true, ..self.one("other_protocol", bytes, not_stored(), None) }
    }

    // -- HTTP/2 ---------------------------------------------------------------

    /// HTTP/2 with prior knowledge, which the server does not speak: the
    /// preface, then frames of any kind, sometimes a valid signed event as
    /// HTTP/1.1. hyper closes the connection at the preface, with no answer.
    fn http2(&mut self, index: usize) -> Case {
        const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let mut bytes = PREFACE.to_vec();
        for _ in 0..self.rng.between(0, 20) {
            // Length (24 bits), type, flags, stream, payload.
            let length = self.rng.between(0, 300);
            bytes.extend_from_slice(&(length as u32).to_be_bytes()[1..]);
            bytes.extend([self.rng.below(10) as u8, self.rng.next() as u8]);
            bytes.extend_from_slice(&(self.rng.below(8) as u32).to_be_bytes());
            bytes.extend(self.rng.bytes(length));
        }
        if self.rng.chance(30) {
            let body = self.mapped_body(index);
            bytes.extend(self.signed_post(index, &body));
        }
        // Never split inside the preface: hyper answers a part of it (an
        // HTTP/1 request line of version 2.0) with 400.
        let split = Some(self.rng.between(PREFACE.len(), bytes.len()));
        Case { split, half_close: true, ..self.one("http2", bytes, Expect::Closed, None) }
    }

    // -- routes -----------------------------------------------------------------

    fn unknown_path(&mut self, index: usize) -> Case {
        let body = self.mapped_body(index);
        let id = self.webhook_id(index);
        let auth = self.sign(&id, &body);
        let (path, expect): (String, Expect) = match self.rng.below(14) {
            0 => ("/".into(), refused(404, "not_found")),
            1 => ("/receive-event/".into(), refused(404, "not_found")),
            2 => ("/RECEIVE-EVENT".into(), refused(404, "not_found")),
            3 => ("/receive-events".into(), refused(404, "not_found")),
            4 => ("/receive-event/../admin/replay".into(), some_refusal()),
            5 => ("/receive%2Devent".into(), some_refusal()),
            6 => ("//receive-event".into(), some_refusal()),
            7 => ("/receive-event%00".into(), refused(404, "not_found")),
            8 => (format!("/{}", "a/".repeat(self.rng.between(10, 2000))), refused(404, "not_found")),
            9 => ("/admin".into(), refused(404, "not_found")),
            // The admin token is checked before the method.
            10 => ("/admin/events".into(), refused(401, "unauthorized")),
            11 => ("/%ff%fe".into(), refused(404, "not_found")),
            12 => ("*".into(), Expect::Refused { status: None, code: None, closed: true }),
            _ => ("/.env".into(), refused(404, "not_found")),
        };
        // Signed: a valid signature must not make another path store anything.
        let headers = self.headers(Some(b"application/json"), body.len(), true, auth);
        self.one("unknown_path", render(&format!("POST {path} HTTP/1.1"), &headers, &body), expect, None)
    }

    fn wrong_method(&mut self, index: usize) -> Case {
        let body = self.mapped_body(index);
        let id = self.webhook_id(index);
        let auth = self.sign(&id, &body);
        let (method, path, expect): (String, &str, Expect) = match self.rng.below(12) {
            0 => ("GET".into(), "/receive-event", refused(405, "method_not_allowed")),
            1 => ("PUT".into(), "/receive-event", refused(405, "method_not_allowed")),
            2 => ("DELETE".into(), "/receive-event", refused(405, "method_not_allowed")),
            3 => ("PATCH".into(), "/receive-event", refused(405, "method_not_allowed")),
            4 => ("OPTIONS".into(), "/receive-event", refused(405, "method_not_allowed")),
            5 => ("HEAD".into(), "/receive-event", Expect::Refused { status: Some(405), code: None, closed: true }),
            6 => ("post".into(), "/receive-event", refused(405, "method_not_allowed")),
            7 => ("FOO".into(), "/receive-event", refused(405, "method_not_allowed")),
            8 => ("POST".into(), "/health", refused(405, "method_not_allowed")),
            9 => ("TRACE".into(), "/receive-event", refused(405, "method_not_allowed")),
            10 => (
                "M".repeat(self.rng.between(20, 5000)),
                "/receive-event",
                Expect::Refused { status: None, code: None, closed: true },
            ),
            _ => ("PO@ST".into(), "/receive-event", Expect::Refused { status: None, code: None, closed: true }),
        };
        let headers = self.headers(Some(b"application/json"), body.len(), true, auth);
        self.one("wrong_method", render(&format!("{method} {path} HTTP/1.1"), &headers, &body), expect, None)
    }

    fn health(&mut self, _index: usize) -> Case {
        let method = *self.rng.pick(&["GET", "HEAD"]);
        let query = *self.rng.pick(&["", "?x=1", "?%00", "?a=b&a=c"]);
        let headers = self.headers(None, 0, true, Vec::new());
        self.one(
            "health",
            render(&format!("{method} /health{query} HTTP/1.1"), &headers, b""),
            Expect::Status(200),
            None,
        )
    }

    fn admin(&mut self, _index: usize) -> Case {
        let (token, expect): (Option<String>, Expect) = match self.rng.below(5) {
            0 => (None, refused(401, "unauthorized")),
            1 => (Some(format!("Bearer {ADMIN}x")), refused(401, "unauthorized")),
            2 => (Some(format!("Bearer {BEARER}")), refused(401, "unauthorized")),
            3 => (Some(ADMIN.to_string()), refused(401, "unauthorized")),
            _ => (Some(format!("Bearer {ADMIN}")), Expect::NotStored { closed: false }),
        };
        let authorized = matches!(expect, Expect::NotStored { .. });
        let (query, parses) = *self.rng.pick(&[
            ("", true),
            ("?status=failed", true),
            ("?status=unmapped&limit=5", true),
            ("?status=bogus", true),
            ("?limit=-1", false),
            ("?limit=99999999999999999999999", false),
            ("?since=%27%3BDROP%20TABLE%20events", true),
            ("?since=garbage", true),
            ("?type=%00", true),
            ("?status=pending&status=failed", false),
            ("?unknown=1", false),
            ("?since=9999-12-31T23:59:59Z", true),
        ]);
        // The query is read before the token is checked: one it cannot
        // read is refused (400) even without a token.
        let expect = if parses || authorized { expect } else { some_refusal() };
        // A since that is not a time is refused, never matched against nothing.
        let bad_since = query.contains("since=") && !query.contains("9999");
        let expect = if authorized && bad_since { refused(400, "bad_since") } else { expect };
        let mut extra = Vec::new();
        if let Some(token) = token {
            extra.push(header("Authorization", token));
        }
        let (request_line, body, expect) = if self.rng.chance(50) || authorized {
            (format!("GET /admin/events{query} HTTP/1.1"), Vec::new(), expect)
        } else {
            // Never with the right token: a replay would change the journal.
            let body = self.rng.pick(&[&b"{\"status\": \"failed\"}"[..], b"{\"id\": 1}", b"{", b"[]", b""]).to_vec();
            // The JSON extractor may answer before the token is checked.
            ("POST /admin/replay HTTP/1.1".to_string(), body, some_refusal())
        };
        let headers = self.headers(Some(b"application/json"), body.len(), true, extra);
        self.one("admin", render(&request_line, &headers, &body), expect, None)
    }
}

#[test]
fn signing_matches_the_standard_webhooks_test_vector() {
    let key = [49, 242, 144, 246, 191, 6, 41, 138, 171, 79, 8, 212, 60, 63, 8, 44, 246, 72, 163, 98, 218, 45, 164, 176];
    assert_eq!(secret_text(&key), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert_eq!(
        signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, br#"{"test": 2432232314}"#),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}
