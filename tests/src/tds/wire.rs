//! The byte level of TDS: packets on the socket, a reader over a message,
//! and a writer for the server's token stream (MS-TDS 2.2.3, 2.2.7).

use std::{
    io::{self, Read, Write},
    net::TcpStream,
};

/// Bytes in a packet header.
pub const HEADER: usize = 8;

/// Packet types (MS-TDS 2.2.3.1.1).
pub mod packet {
    /// SQL batch.
    pub const BATCH: u8 = 0x01;
    /// Remote procedure call.
    pub const RPC: u8 = 0x03;
    /// Tabular result: every answer from the server.
    pub const REPLY: u8 = 0x04;
    /// Attention (cancel).
    pub const ATTENTION: u8 = 0x06;
    /// Bulk load data.
    pub const BULK_LOAD: u8 = 0x07;
    /// Transaction manager request.
    pub const TRANSACTION_MANAGER: u8 = 0x0E;
    /// LOGIN7.
    pub const LOGIN7: u8 = 0x10;
    /// PRELOGIN.
    pub const PRELOGIN: u8 = 0x12;
}

/// Token types the server writes (MS-TDS 2.2.7).
mod token {
    pub const RETURN_STATUS: u8 = 0x79;
    pub const COLMETADATA: u8 = 0x81;
    pub const ERROR: u8 = 0xAA;
    pub const LOGINACK: u8 = 0xAD;
    pub const ROW: u8 = 0xD1;
    pub const ENVCHANGE: u8 = 0xE3;
    pub const DONE: u8 = 0xFD;
    pub const DONEPROC: u8 = 0xFE;
    pub const DONEINPROC: u8 = 0xFF;
}

/// DONE status bits (MS-TDS 2.2.7.6).
pub mod done {
    /// More results follow in this answer.
    pub const MORE: u16 = 0x0001;
    /// The statement failed.
    pub const ERROR: u16 = 0x0002;
    /// The row count is valid.
    pub const COUNT: u16 = 0x0010;
    /// Acknowledges an attention.
    pub const ATTENTION: u16 = 0x0020;
}

/// Which DONE token.
#[derive(Debug, Clone, Copy)]
pub enum DoneKind {
    /// DONE: the end of a batch statement.
    Done,
    /// DONEPROC: the end of a procedure call.
    Proc,
    /// DONEINPROC: the end of a statement inside a procedure.
    InProc,
}

/// `SQL_Latin1_General_CP1_CI_AS`: LCID 0x0409, case/accent/width-insensitive, sort id 52.
pub const COLLATION: [u8; 5] = [0x09, 0x04, 0xD0, 0x00, 0x34];

/// Reads one whole message (every packet up to the end-of-message bit).
/// `None` when the peer closed the connection between messages.
pub fn read_message(stream: &mut TcpStream) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut message = Vec::new();
    let mut kind = None;
    loop {
        let mut header = [0u8; HEADER];
        if let Err(e) = stream.read_exact(&mut header) {
            if kind.is_none() && e.kind() == io::ErrorKind::UnexpectedEof {
                return Ok(None);
            }
            return Err(e);
        }
        let length = u16::from_be_bytes([header[2], header[3]]) as usize;
        if length < HEADER {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("packet length {length} is below 8")));
        }
        let start = message.len();
        message.resize(start + length - HEADER, 0);
        stream.read_exact(&mut message[start..])?;
        kind.get_or_insert(header[0]);
        if header[1] & 0x01 != 0 {
            return Ok(Some((kind.unwrap_or(header[0]), message)));
        }
    }
}

/// Writes `payload` as one message of reply packets no bigger than
/// `packet_size`.
pub fn write_message(
    stream: &mut TcpStream,
    payload: &[u8],
    packet_size: usize,
    spid: u16,
    packet_id: &mut u8,
) -> io::Result<()> {
    let room = packet_size.max(HEADER + 1) - HEADER;
    let mut out = Vec::with_capacity(payload.len() + HEADER * (payload.len() / room + 1));
    let mut chunks = payload.chunks(room).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&header(HEADER, true, spid, *packet_id));
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        out.extend_from_slice(&header(HEADER + chunk.len(), last, spid, *packet_id));
        out.extend_from_slice(chunk);
        *packet_id = packet_id.wrapping_add(1);
    }
    stream.write_all(&out)?;
    stream.flush()
}

fn header(length: usize, last: bool, spid: u16, id: u8) -> [u8; HEADER] {
    let length = (length as u16).to_be_bytes();
    let spid = spid.to_be_bytes();
    [packet::REPLY, u8::from(last), length[0], length[1], spid[0], spid[1], id, 0]
}

/// A request that cannot be decoded.
#[derive(Debug)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Decoding result.
pub type Parsed<T> = Result<T, Malformed>;

/// A cursor over a received message; every read checks the bounds.
pub struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    /// Reads `bytes` from the start.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, position: 0 }
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    /// Moves to `position` (from the start).
    pub fn seek(&mut self, position: usize) -> Parsed<()> {
        if position > self.bytes.len() {
            return Err(Malformed(format!("offset {position} is past the end ({} bytes)", self.bytes.len())));
        }
        self.position = position;
        Ok(())
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Parsed<&'a [u8]> {
        if n > self.remaining() {
            return Err(Malformed(format!(
                "needed {n} bytes at offset {}, only {} left",
                self.position,
                self.remaining()
            )));
        }
        let slice = &self.bytes[self.position..self.position + n];
        self.position += n;
        Ok(slice)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let slice = &self.bytes[self.position..];
        self.position = self.bytes.len();
        slice
    }

    /// The next byte, without moving.
    pub fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    /// A byte.
    pub fn u8(&mut self) -> Parsed<u8> {
        Ok(self.take(1)?[0])
    }

    /// A little-endian u16.
    pub fn u16(&mut self) -> Parsed<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }

    /// A little-endian u32.
    pub fn u32(&mut self) -> Parsed<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    /// A little-endian u64.
    pub fn u64(&mut self) -> Parsed<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    /// `chars` UTF-16LE code units as a string.
    pub fn utf16(&mut self, chars: usize) -> Parsed<String> {
        utf16(self.take(chars * 2)?)
    }

    /// A B_VARCHAR: a byte count of UTF-16 code units, then the units.
    pub fn b_varchar(&mut self) -> Parsed<String> {
        let chars = self.u8()? as usize;
        self.utf16(chars)
    }

    /// A US_VARCHAR: a u16 count of UTF-16 code units, then the units.
    pub fn us_varchar(&mut self) -> Parsed<String> {
        let chars = self.u16()? as usize;
        self.utf16(chars)
    }

    /// Skips the ALL_HEADERS block that starts batch, RPC and transaction
    /// manager requests (MS-TDS 2.2.5.3), returning the transaction
    /// descriptor it carries (0 if none).
    pub fn all_headers(&mut self) -> Parsed<u64> {
        let start = self.position;
        let total = self.u32()? as usize;
        if total < 4 || total > self.bytes.len() - start {
            return Err(Malformed(format!("ALL_HEADERS length {total} does not fit the message")));
        }
        let mut descriptor = 0;
        while self.position < start + total {
            let length = self.u32()? as usize;
            if length < 6 {
                return Err(Malformed(format!("header length {length} is below 6")));
            }
            let kind = self.u16()?;
            let data = self.take(length - 6)?;
            if kind == 2 && data.len() >= 8 {
                descriptor = u64::from_le_bytes(data[..8].try_into().unwrap());
            }
        }
        self.seek(start + total)?;
        Ok(descriptor)
    }
}

/// UTF-16LE bytes as a string.
pub fn utf16(bytes: &[u8]) -> Parsed<String> {
    if !bytes.len().is_multiple_of(2) {
        return Err(Malformed(format!("{} bytes of UTF-16 is an odd count", bytes.len())));
    }
    let units = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
    char::decode_utf16(units).collect::<Result<String, _>>().map_err(|e| Malformed(format!("invalid UTF-16: {e}")))
}

/// One column of a result set the server sends: always NVARCHAR.
pub struct TextColumn<'a> {
    /// The column name.
    pub name: &'a str,
    /// NVARCHAR(MAX) (PLP values) instead of NVARCHAR(4000).
    pub max: bool,
}

/// Builds a server answer token by token.
pub struct Tokens {
    bytes: Vec<u8>,
    /// Row counts are 8 bytes (TDS 7.2 and later) instead of 4.
    wide: bool,
}

impl Tokens {
    /// An empty answer; `wide` as negotiated (TDS 7.2+).
    pub fn new(wide: bool) -> Self {
        Self { bytes: Vec::new(), wide }
    }

    /// The encoded tokens.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    fn u8(&mut self, v: u8) {
        self.bytes.push(v);
    }

    fn u16(&mut self, v: u16) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    fn utf16(&mut self, s: &str) {
        for unit in s.encode_utf16() {
            self.u16(unit);
        }
    }

    fn b_varchar(&mut self, s: &str) {
        let units = s.encode_utf16().count().min(255);
        self.u8(units as u8);
        for unit in s.encode_utf16().take(units) {
            self.u16(unit);
        }
    }

    fn us_varchar(&mut self, s: &str) {
        let units = s.encode_utf16().count().min(u16::MAX as usize);
        self.u16(units as u16);
        for unit in s.encode_utf16().take(units) {
            self.u16(unit);
        }
    }

    /// Writes a token whose body starts with a u16 length.
    fn sized(&mut self, token: u8, body: impl FnOnce(&mut Self)) {
        self.u8(token);
        let at = self.bytes.len();
        self.u16(0);
        body(self);
        let length = (self.bytes.len() - at - 2) as u16;
        self.bytes[at..at + 2].copy_from_slice(&length.to_le_bytes());
    }

    /// ENVCHANGE with two B_VARCHAR values (database, language, packet size).
    pub fn env_text(&mut self, kind: u8, new: &str, old: &str) {
        self.sized(token::ENVCHANGE, |t| {
            t.u8(kind);
            t.b_varchar(new);
            t.b_varchar(old);
        });
    }

    /// ENVCHANGE with two B_VARBYTE values (collation, transactions).
    pub fn env_bytes(&mut self, kind: u8, new: &[u8], old: &[u8]) {
        self.sized(token::ENVCHANGE, |t| {
            t.u8(kind);
            t.u8(new.len() as u8);
            t.bytes.extend_from_slice(new);
            t.u8(old.len() as u8);
            t.bytes.extend_from_slice(old);
        });
    }

    /// LOGINACK for `tds_version` (as the LOGIN7 carries it).
    pub fn login_ack(&mut self, tds_version: u32, program: &str) {
        self.sized(token::LOGINACK, |t| {
            t.u8(1); // SQL_TSQL
            t.bytes.extend_from_slice(&tds_version.to_be_bytes());
            t.b_varchar(program);
            t.bytes.extend_from_slice(&[16, 0, 0x03, 0xE8]); // 16.0.1000
        });
    }

    /// ERROR (MS-TDS 2.2.7.10).
    pub fn error(&mut self, number: u32, state: u8, class: u8, message: &str, server: &str, procedure: &str) {
        let wide = self.wide;
        self.sized(token::ERROR, |t| {
            t.u32(number);
            t.u8(state);
            t.u8(class);
            t.us_varchar(message);
            t.b_varchar(server);
            t.b_varchar(procedure);
            if wide {
                t.u32(1);
            } else {
                t.u16(1);
            }
        });
    }

    /// DONE, DONEPROC or DONEINPROC.
    pub fn done(&mut self, kind: DoneKind, status: u16, rows: u64) {
        self.u8(match kind {
            DoneKind::Done => token::DONE,
            DoneKind::Proc => token::DONEPROC,
            DoneKind::InProc => token::DONEINPROC,
        });
        self.u16(status);
        self.u16(0); // CurCmd
        if self.wide {
            self.u64(rows);
        } else {
            self.u32(rows as u32);
        }
    }

    /// RETURNSTATUS.
    pub fn return_status(&mut self, status: i32) {
        self.u8(token::RETURN_STATUS);
        self.bytes.extend_from_slice(&status.to_le_bytes());
    }

    /// COLMETADATA for NVARCHAR columns.
    pub fn text_columns(&mut self, columns: &[TextColumn<'_>]) {
        self.u8(token::COLMETADATA);
        self.u16(columns.len() as u16);
        for column in columns {
            self.u32(0); // UserType
            self.u16(0x0001); // Flags: nullable
            self.u8(0xE7); // NVARCHARTYPE
            self.u16(if column.max { 0xFFFF } else { 8000 });
            self.bytes.extend_from_slice(&COLLATION);
            self.b_varchar(column.name);
        }
    }

    /// ROW of NVARCHAR values, laid out as `columns` said.
    pub fn text_row(&mut self, columns: &[TextColumn<'_>], values: &[Option<String>]) {
        self.u8(token::ROW);
        for (i, column) in columns.iter().enumerate() {
            let value = values.get(i).and_then(|v| v.as_deref());
            match (value, column.max) {
                (None, false) => self.u16(0xFFFF),
                (None, true) => self.u64(u64::MAX),
                (Some(text), false) => {
                    self.u16((text.encode_utf16().count() * 2) as u16);
                    self.utf16(text);
                }
                (Some(text), true) => {
                    let bytes = (text.encode_utf16().count() * 2) as u64;
                    self.u64(bytes);
                    if bytes > 0 {
                        self.u32(bytes as u32);
                        self.utf16(text);
                    }
                    self.u32(0); // PLP terminator
                }
            }
        }
    }
}
