//! What holds before a request reaches intake: HTTPS with `server.tls`,
//! the request deadline, the connection cap, the per-client rate limit,
//! and the count of every refusal at `GET /metrics`.

use std::{
    io::{Read, Write},
    net::TcpStream,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use buktor_tests::{Setup, http, query, wait_for};
use serde_json::json;

const APPOINTMENT: &str = r#"{"event_type": "appointment", "appointment_id": 123, "patient_id": 456, "doctor_id": 789, "status": "confirmed"}"#;

/// A self-signed certificate for `localhost` and 127.0.0.1, as PEM
/// (certificate, key).
fn certificate() -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key pair");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("certificate parameters");
    let cert = params.self_signed(&key).expect("self-signed certificate");
    (cert.pem(), key.serialize_pem())
}

/// A TLS client that trusts only `cert_pem`.
fn tls_connect(address: &str, cert_pem: &str) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("PEM certificate")).expect("trust it");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").expect("server name");
    let connection = rustls::ClientConnection::new(Arc::new(config), name).expect("TLS client");
    let tcp = TcpStream::connect(address).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    rustls::StreamOwned::new(connection, tcp)
}

#[test]
fn https_with_a_certificate_made_here_carries_the_seed_event() {
    let (cert, key) = certificate();
    let mut setup = Setup::new();
    std::fs::write(setup.path("cert.pem"), &cert).unwrap();
    std::fs::write(setup.path("key.pem"), &key).unwrap();
    // Relative paths: relative to the config file.
    setup.config["server"]["tls"] = json!({"cert_path": "cert.pem", "key_path": "key.pem"});
    let middleware = setup.start();
    assert!(middleware.logs().contains("listening on https://"), "{}", middleware.logs());

    let mut stream = tls_connect(&middleware.address, &cert);
    let headers = [("Content-Type", "application/json")];
    let response =
        http::exchange(&mut stream, &middleware.address, "POST", "/receive-event", &headers, APPOINTMENT.as_bytes())
            .expect("HTTPS request");
    assert_eq!(response.status, 200, "{}", response.body);
    wait_for(Duration::from_secs(10), "the appointment row", || {
        let rows = query(&setup.his(), "SELECT HIS_appointment_id, HIS_status FROM HIS_appointments");
        (rows == [vec![json!(123), json!("confirmed")]]).then_some(())
    });

    // Plain HTTP to the HTTPS port gets no HTTP answer, and stores nothing.
    let plain = http::request(&middleware.address, "POST", "/receive-event", &headers, APPOINTMENT.as_bytes());
    assert!(plain.is_err(), "plain HTTP must not be served on the TLS port: {plain:?}");
    assert_eq!(query(&setup.journal(), "SELECT COUNT(*) FROM events"), [vec![json!(1)]]);
}

#[test]
fn tls_files_that_cannot_be_used_stop_startup_with_a_line_naming_them() {
    let (cert, _) = certificate();
    let (_, other_key) = certificate();
    let cases = [
        ("missing.pem", None, "server.tls.cert_path", "cannot be read"),
        ("cert.pem", Some("not PEM at all"), "server.tls.cert_path", "holds no certificate"),
        ("cert.pem", Some(cert.as_str()), "server.tls.key_path", "does not go with the certificate"),
    ];
    for (cert_file, cert_text, setting, expected) in cases {
        let mut setup = Setup::new();
        if let Some(text) = cert_text {
            std::fs::write(setup.path(cert_file), text).unwrap();
        }
        std::fs::write(setup.path("key.pem"), &other_key).unwrap();
        setup.config["server"]["tls"] = json!({"cert_path": cert_file, "key_path": "key.pem"});
        let (status, stderr) = setup.run_expecting_exit();
        assert!(!status.success());
        let line =
            stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("no error line:\n{stderr}"));
        assert!(line.contains(setting) && line.contains(expected), "{cert_file}: {line}");
        assert!(line.contains(&setup.path(cert_file).display().to_string()) || setting.ends_with("key_path"), "{line}");
    }
}

#[test]
fn a_client_that_stalls_is_cut_off_after_the_request_timeout() {
    let mut setup = Setup::new();
    setup.config["server"]["request_timeout_secs"] = json!(1);
    let middleware = setup.start();

    // A client that says nothing, and one whose headers never end: the
    // server closes both connections, which the client keeps open. (A read
    // that gives up after its 30 s of patience is an error, not the end of
    // the stream.)
    for sent in [&b""[..], b"POST /receive-event HTTP/1.1\r\nHost: x\r\n"] {
        let mut stalled = TcpStream::connect(&middleware.address).unwrap();
        stalled.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stalled.write_all(sent).unwrap();
        let mut answer = Vec::new();
        let closed = stalled.read_to_end(&mut answer);
        assert!(closed.is_ok(), "after {sent:?}, the server kept the connection open: {closed:?}");
    }

    // A body that never finishes: 408 with a JSON reason.
    let mut slow = TcpStream::connect(&middleware.address).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    slow.write_all(
        b"POST /receive-event HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"event_type\"",
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = slow.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"error\":\"body_timeout\"") && text.contains("server.request_timeout_secs"), "{text}");
    assert_eq!(query(&setup.journal(), "SELECT COUNT(*) FROM events"), [vec![json!(0)]]);
}

#[test]
fn beyond_the_cap_a_connection_takes_an_idle_ones_place_or_waits_for_a_busy_one() {
    let mut setup = Setup::new();
    setup.config["server"]["max_connections"] = json!(2);
    let middleware = setup.start();

    // Two idle connections take both places: a third takes the place of
    // one of them, which the server closes (end of stream).
    let idle = [TcpStream::connect(&middleware.address).unwrap(), TcpStream::connect(&middleware.address).unwrap()];
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(http::request(&middleware.address, "GET", "/health", &[], b"").expect("health").status, 200);
    let closed = idle
        .iter()
        .filter(|stream| {
            let mut stream: &TcpStream = stream;
            stream.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            matches!(stream.read(&mut [0u8; 1]), Ok(0))
        })
        .count();
    assert_eq!(closed, 1, "exactly one idle connection made room");
    drop(idle);

    // Two busy connections (a request whose body is still arriving) keep
    // their places: a third waits until one of them is answered.
    let busy = |n: usize| {
        let mut stream = TcpStream::connect(&middleware.address).unwrap();
        let body = APPOINTMENT.replace("123", &format!("{}", 500 + n));
        let head = format!(
            "POST /receive-event HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&body.as_bytes()[..10]).unwrap();
        (stream, body)
    };
    let (mut first, first_body) = busy(1);
    let _second = busy(2);
    std::thread::sleep(Duration::from_millis(300));
    let address = middleware.address.clone();
    let first_answered = Arc::new(AtomicBool::new(false));
    let third = {
        let first_answered = first_answered.clone();
        std::thread::spawn(move || {
            let response = http::request(&address, "GET", "/health", &[], b"").expect("health");
            (response.status, first_answered.load(Ordering::SeqCst))
        })
    };
    // Time for the server to serve the third, were it to do so wrongly.
    std::thread::sleep(Duration::from_millis(1000));
    first_answered.store(true, Ordering::SeqCst);
    first.write_all(&first_body.as_bytes()[10..]).unwrap();
    let mut answer = [0u8; 12];
    first.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    drop(first);
    let (status, after_the_first) = third.join().unwrap();
    assert_eq!(status, 200);
    assert!(after_the_first, "the third connection was served while two busy ones held every place");
}

#[test]
fn a_client_over_its_rate_gets_429_with_retry_after_and_nothing_is_stored() {
    let mut setup = Setup::new();
    setup.config["server"]["rate_limit"] = json!({"requests_per_second": 0.2, "burst": 3});
    let middleware = setup.start();
    for n in 0..3 {
        let response = middleware.post_event(&APPOINTMENT.replace("123", &format!("{}", 1000 + n)));
        assert_eq!(response.status, 200, "request {n}: {}", response.body);
    }
    let limited = middleware.post_event(APPOINTMENT);
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert_eq!(limited.json()["error"], "rate_limited");
    assert!(limited.json()["message"].as_str().unwrap().contains("server.rate_limit"), "{}", limited.body);
    // One token every 5 s: the next is due in (at most) 5 s.
    let retry_after: u64 = limited.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=5).contains(&retry_after), "Retry-After: {retry_after}");
    // Liveness probes are not limited.
    assert_eq!(middleware.request("GET", "/health", &[], b"").status, 200);
    assert_eq!(query(&setup.journal(), "SELECT COUNT(*) FROM events"), [vec![json!(3)]]);
    assert!(metrics(&middleware).contains("buktor_requests_refused_total{reason=\"rate_limited\"} 1"));
}

fn metrics(middleware: &buktor_tests::Middleware) -> String {
    let response = middleware.request("GET", "/metrics", &[], b"");
    assert_eq!(response.status, 200);
    assert!(response.header("content-type").is_some_and(|t| t.starts_with("text/plain")), "{:?}", response.headers);
    response.body
}

#[test]
fn every_refusal_is_counted_by_reason() {
    let mut setup = Setup::new();
    setup.config["server"]["auth"] = json!({"bearer_tokens": ["a-long-enough-bearer-token"]});
    setup.config["server"]["max_body_bytes"] = json!(150);
    let middleware = setup.start();
    let bearer = ("Authorization", "Bearer a-long-enough-bearer-token");
    let json_type = ("Content-Type", "application/json");
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let refusals: [(Headers, &[u8], u16); 5] = [
        (&[json_type], APPOINTMENT.as_bytes(), 401),
        (&[json_type, ("Authorization", "Bearer wrong-token-of-some-length")], APPOINTMENT.as_bytes(), 401),
        (&[json_type, bearer], b"{\"event_type\": ", 400),
        (&[json_type, bearer], &[b' '; 300], 413),
        (&[bearer], b"{}", 415),
    ];
    for (headers, body, status) in refusals {
        assert_eq!(middleware.request("POST", "/receive-event", headers, body).status, status);
    }
    assert_eq!(middleware.request("POST", "/receive-event", &[json_type, bearer], APPOINTMENT.as_bytes()).status, 200);

    let text = metrics(&middleware);
    let refused: Vec<&str> = text.lines().filter(|l| l.starts_with("buktor_requests_refused_total{")).collect();
    assert_eq!(
        refused,
        [
            "buktor_requests_refused_total{reason=\"bad_token\"} 1",
            "buktor_requests_refused_total{reason=\"body_too_large\"} 1",
            "buktor_requests_refused_total{reason=\"malformed_json\"} 1",
            "buktor_requests_refused_total{reason=\"missing_credentials\"} 1",
            "buktor_requests_refused_total{reason=\"unsupported_content_type\"} 1",
        ],
        "{text}"
    );
    // Refused requests are logged with their reason, never with their body.
    let logs = middleware.logs();
    assert!(logs.contains("missing_credentials"), "{logs}");
    assert!(!logs.contains("confirmed"), "a body reached the log:\n{logs}");
    assert!(!logs.contains("a-long-enough-bearer-token"), "a token reached the log:\n{logs}");
    assert_eq!(query(&setup.journal(), "SELECT COUNT(*) FROM events"), [vec![json!(1)]]);
}

#[test]
fn a_client_that_never_reads_its_answers_is_cut_off() {
    let mut setup = Setup::new();
    setup.config["server"]["request_timeout_secs"] = json!(1);
    setup.config["server"]["max_connections"] = json!(1);
    // The server says why it ended a connection at debug level.
    setup.env.push(("BUKTOR_LOG".into(), "debug".into()));
    let middleware = setup.start();
    // Pipelined requests, answers never read: the server's writes block
    // once the socket buffers are full, and it stops reading.
    let hog = TcpStream::connect(&middleware.address).unwrap();
    let mut writer = hog.try_clone().unwrap();
    // Patience only: a write that gives up is TimedOut or WouldBlock, which
    // the assertion below refuses.
    writer.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    let flood = std::thread::spawn(move || {
        let request = b"GET /no-such-page-to-fill-the-buffers HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000);
        loop {
            if let Err(e) = writer.write_all(&request) {
                return e.kind();
            }
        }
    });
    // The only place is the hog's, which the test keeps open: /health is
    // served only once the server has closed the hog's connection.
    let health = http::request(&middleware.address, "GET", "/health", &[], b"").expect("health");
    assert_eq!(health.status, 200);
    // The server closed it while the client still wrote: the writes end
    // in a reset, not in the client's own patience running out.
    let ended = flood.join().unwrap();
    assert!(
        matches!(ended, std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe),
        "the hog's writes ended with {ended:?}, not a reset by the server"
    );
    // And it closed it because an answer could not be written, or, between
    // two of its requests, to give its place to the new connection (not,
    // say, for a header deadline). (The server's line names the failed
    // write, not its cause, "the client took no data for 1s".)
    let peer = format!("peer={}", hog.local_addr().unwrap());
    wait_for(Duration::from_secs(10), "the server's reason in its log", || {
        let logs = middleware.logs();
        let reason = |l: &&str| l.contains("connection ended: error writing") || l.contains("gives its place");
        logs.lines().any(|l| reason(&l) && l.contains(&peer)).then_some(())
    });
    drop(hog);
}
