//! HPACK (RFC 7541) for the grpc probe's HTTP/2 client: a full decoder (static and
//! dynamic tables, every representation, Huffman strings) and the one encoding the client
//! sends (literal header fields without indexing, plain strings).
use std::collections::VecDeque;
use std::sync::OnceLock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub &'static str);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "hpack: {}", self.0)
    }
}

/// RFC 7541 Appendix A.
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Code lengths in bits of the Huffman code of RFC 7541 Appendix B, for symbols 0–255
/// and EOS (256). The code is canonical (codes of one length are consecutive and
/// ordered by symbol), so the lengths define it completely.
const HUFFMAN_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0-15
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 16-31
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // ' ' - '/'
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // '0' - '?'
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // '@' - 'O'
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 'P' - '_'
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // '`' - 'o'
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 'p' - 127
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 128-143
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 144-159
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 160-175
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 176-191
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 192-207
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 208-223
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 224-239
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 240-255
    30, // EOS
];

/// The canonical code as decoding tables: for each length, the first code of that
/// length, how many codes have it, and where its symbols start in `symbols`.
struct Canonical {
    first: [u32; 31],
    count: [u32; 31],
    offset: [usize; 31],
    symbols: Vec<u16>,
}

fn canonical() -> &'static Canonical {
    static C: OnceLock<Canonical> = OnceLock::new();
    C.get_or_init(|| {
        let mut count = [0u32; 31];
        for &l in &HUFFMAN_LENGTHS {
            count[l as usize] += 1;
        }
        let mut first = [0u32; 31];
        let mut offset = [0usize; 31];
        let mut code = 0u32;
        let mut at = 0usize;
        for len in 1..31 {
            code <<= 1;
            first[len] = code;
            offset[len] = at;
            code += count[len];
            at += count[len] as usize;
        }
        let mut symbols: Vec<u16> = (0..257u16).collect();
        symbols.sort_by_key(|&s| (HUFFMAN_LENGTHS[s as usize], s));
        Canonical {
            first,
            count,
            offset,
            symbols,
        }
    })
}

/// The code of `sym` (for tests and checks): (code, length).
#[cfg(test)]
fn huffman_code(sym: u16) -> (u32, u8) {
    let c = canonical();
    let len = HUFFMAN_LENGTHS[sym as usize];
    let rank = c.symbols[c.offset[len as usize]..]
        .iter()
        .position(|&s| s == sym)
        .unwrap_or(0);
    (c.first[len as usize] + rank as u32, len)
}

/// Decodes a Huffman-coded string (RFC 7541 section 5.2): padding must be at most 7
/// bits, all ones; EOS inside the string is an error.
pub fn huffman_decode(data: &[u8]) -> Result<Vec<u8>, Error> {
    let c = canonical();
    let mut out = Vec::with_capacity(data.len() * 8 / 5);
    let mut code = 0u32;
    let mut len = 0usize;
    for &byte in data {
        for bit in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> bit) & 1);
            len += 1;
            if len > 30 {
                return Err(Error("invalid Huffman code"));
            }
            let idx = code.wrapping_sub(c.first[len]);
            if code >= c.first[len] && idx < c.count[len] {
                let sym = c.symbols[c.offset[len] + idx as usize];
                if sym == 256 {
                    return Err(Error("EOS in Huffman string"));
                }
                out.push(sym as u8);
                code = 0;
                len = 0;
            }
        }
    }
    // What is left must be a prefix of EOS (all ones), shorter than a byte.
    if len > 7 || code != (1u32 << len) - 1 {
        return Err(Error("invalid Huffman padding"));
    }
    Ok(out)
}

/// Decodes an integer with an N-bit prefix (section 5.1) from `buf[*pos..]`.
fn decode_int(buf: &[u8], pos: &mut usize, prefix: u8) -> Result<usize, Error> {
    let max = (1usize << prefix) - 1;
    let first = *buf.get(*pos).ok_or(Error("truncated integer"))?;
    *pos += 1;
    let mut v = usize::from(first) & max;
    if v < max {
        return Ok(v);
    }
    let mut shift = 0u32;
    loop {
        let b = *buf.get(*pos).ok_or(Error("truncated integer"))?;
        *pos += 1;
        if shift > 28 {
            return Err(Error("integer overflow"));
        }
        v += usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
}

fn encode_int(out: &mut Vec<u8>, flags: u8, prefix: u8, v: usize) {
    let max = (1usize << prefix) - 1;
    if v < max {
        out.push(flags | v as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = v - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

fn decode_string(buf: &[u8], pos: &mut usize) -> Result<Vec<u8>, Error> {
    let huffman = buf.get(*pos).ok_or(Error("truncated string"))? & 0x80 != 0;
    let len = decode_int(buf, pos, 7)?;
    let end = pos.checked_add(len).ok_or(Error("truncated string"))?;
    let raw = buf.get(*pos..end).ok_or(Error("truncated string"))?;
    *pos = end;
    if huffman {
        huffman_decode(raw)
    } else {
        Ok(raw.to_vec())
    }
}

/// One header field representation, as a literal without indexing and plain strings.
pub fn encode_literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0x00);
    encode_int(out, 0, 7, name.len());
    out.extend_from_slice(name.as_bytes());
    encode_int(out, 0, 7, value.len());
    out.extend_from_slice(value.as_bytes());
}

/// The decoding side of one HTTP/2 connection: its dynamic table.
#[derive(Debug)]
pub struct Decoder {
    table: VecDeque<(Vec<u8>, Vec<u8>)>,
    size: usize,
    max_size: usize,
    /// SETTINGS_HEADER_TABLE_SIZE we announced: the ceiling for size updates.
    limit: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(4096)
    }
}

impl Decoder {
    pub fn new(limit: usize) -> Decoder {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max_size: limit,
            limit,
        }
    }

    fn entry(&self, index: usize) -> Result<(Vec<u8>, Vec<u8>), Error> {
        if index == 0 {
            return Err(Error("index 0"));
        }
        if index <= STATIC_TABLE.len() {
            let (n, v) = STATIC_TABLE[index - 1];
            return Ok((n.as_bytes().to_vec(), v.as_bytes().to_vec()));
        }
        self.table
            .get(index - STATIC_TABLE.len() - 1)
            .cloned()
            .ok_or(Error("index beyond the dynamic table"))
    }

    fn evict(&mut self) {
        while self.size > self.max_size {
            match self.table.pop_back() {
                Some((n, v)) => self.size -= n.len() + v.len() + 32,
                None => break,
            }
        }
    }

    fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        let size = name.len() + value.len() + 32;
        self.size += size;
        self.table.push_front((name, value));
        // An entry larger than the table empties it (section 4.4).
        self.evict();
    }

    /// The current dynamic table, newest first (for tests).
    #[cfg(test)]
    fn entries(&self) -> Vec<(String, String)> {
        self.table
            .iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    /// Decodes one complete header block into (name, value) pairs.
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<(String, String)>, Error> {
        let mut out = Vec::new();
        let mut pos = 0;
        let mut fields_seen = false;
        while pos < block.len() {
            let b = block[pos];
            let (name, value) = if b & 0x80 != 0 {
                let index = decode_int(block, &mut pos, 7)?;
                self.entry(index)?
            } else if b & 0xc0 == 0x40 {
                let (n, v) = self.literal(block, &mut pos, 6)?;
                self.insert(n.clone(), v.clone());
                (n, v)
            } else if b & 0xe0 == 0x20 {
                // Size updates come first in a block (section 4.2).
                if fields_seen {
                    return Err(Error("table size update after a header field"));
                }
                let size = decode_int(block, &mut pos, 5)?;
                if size > self.limit {
                    return Err(Error("table size update above the announced limit"));
                }
                self.max_size = size;
                self.evict();
                continue;
            } else {
                // 0000xxxx without indexing, 0001xxxx never indexed: 4-bit prefix.
                self.literal(block, &mut pos, 4)?
            };
            fields_seen = true;
            out.push((
                String::from_utf8_lossy(&name).into_owned(),
                String::from_utf8_lossy(&value).into_owned(),
            ));
        }
        Ok(out)
    }

    fn literal(
        &self,
        block: &[u8],
        pos: &mut usize,
        prefix: u8,
    ) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let index = decode_int(block, pos, prefix)?;
        let name = if index == 0 {
            decode_string(block, pos)?
        } else {
            self.entry(index)?.0
        };
        let value = decode_string(block, pos)?;
        Ok((name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn huffman_code_matches_appendix_b() {
        // Kraft equality: the code is complete.
        let sum: f64 = HUFFMAN_LENGTHS
            .iter()
            .map(|&l| 2f64.powi(-i32::from(l)))
            .sum();
        assert!((sum - 1.0).abs() < 1e-12, "{sum}");
        for (sym, code, len) in [
            (0u16, 0x1ff8u32, 13u8),
            (9, 0xffffea, 24),
            (10, 0x3ffffffc, 30),
            (32, 0x14, 6),
            (48, 0x0, 5),
            (58, 0x5c, 7),
            (92, 0x7fff0, 19),
            (122, 0x7b, 7),
            (127, 0xffffffc, 28),
            (128, 0xfffe6, 20),
            (192, 0x3ffffe0, 26),
            (220, 0xffffffd, 28),
            (255, 0x3ffffee, 26),
            (256, 0x3fffffff, 30),
        ] {
            assert_eq!(huffman_code(sym), (code, len), "symbol {sym}");
        }
    }

    #[test]
    fn huffman_strings_and_bad_padding() {
        assert_eq!(
            huffman_decode(&hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff")).unwrap(),
            b"www.example.com"
        );
        assert_eq!(huffman_decode(&hex("a8eb 1064 9cbf")).unwrap(), b"no-cache");
        // 8 bits of padding, and padding that is not all ones.
        assert!(huffman_decode(&hex("a8eb 1064 9cbf ff")).is_err());
        assert!(huffman_decode(&hex("a8eb 1064 9cbe")).is_err());
        // EOS itself.
        assert!(huffman_decode(&hex("ffff ffff")).is_err());
    }

    #[test]
    fn integers_of_section_c1() {
        let mut out = Vec::new();
        encode_int(&mut out, 0, 5, 10);
        encode_int(&mut out, 0, 5, 1337);
        encode_int(&mut out, 0, 8, 42);
        assert_eq!(out, hex("0a 1f9a0a 2a"));
        let mut pos = 0;
        assert_eq!(decode_int(&out, &mut pos, 5).unwrap(), 10);
        assert_eq!(decode_int(&out, &mut pos, 5).unwrap(), 1337);
        assert_eq!(decode_int(&out, &mut pos, 8).unwrap(), 42);
    }

    fn requests(blocks: [&str; 3]) {
        let mut d = Decoder::default();
        assert_eq!(
            d.decode(&hex(blocks[0])).unwrap(),
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com")
            ])
        );
        assert_eq!(d.entries(), pairs(&[(":authority", "www.example.com")]));
        assert_eq!(d.size, 57);
        assert_eq!(
            d.decode(&hex(blocks[1])).unwrap(),
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache")
            ])
        );
        assert_eq!(d.size, 110);
        assert_eq!(
            d.decode(&hex(blocks[2])).unwrap(),
            pairs(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value")
            ])
        );
        assert_eq!(
            d.entries(),
            pairs(&[
                ("custom-key", "custom-value"),
                ("cache-control", "no-cache"),
                (":authority", "www.example.com")
            ])
        );
        assert_eq!(d.size, 164);
    }

    #[test]
    fn rfc7541_c3_requests_without_huffman() {
        requests([
            "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
            "8286 84be 5808 6e6f 2d63 6163 6865",
            "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
        ]);
    }

    #[test]
    fn rfc7541_c4_requests_with_huffman() {
        requests([
            "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
            "8286 84be 5886 a8eb 1064 9cbf",
            "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
        ]);
    }

    #[test]
    fn eviction_size_updates_and_bad_indexes() {
        let mut d = Decoder::new(4096);
        // Size update to 100, then two inserted entries of 42 bytes each: the first goes.
        let mut block = Vec::new();
        encode_int(&mut block, 0x20, 5, 100);
        for (n, v) in [("aaaa", "123456"), ("bbbb", "654321"), ("cccc", "xxxxxx")] {
            block.push(0x40);
            encode_int(&mut block, 0, 7, n.len());
            block.extend_from_slice(n.as_bytes());
            encode_int(&mut block, 0, 7, v.len());
            block.extend_from_slice(v.as_bytes());
        }
        block.push(0x80 | 62); // the newest: cccc
        block.push(0x80 | 63); // then bbbb
        let got = d.decode(&block).unwrap();
        assert_eq!(got[3], ("cccc".into(), "xxxxxx".into()));
        assert_eq!(got[4], ("bbbb".into(), "654321".into()));
        assert_eq!(d.entries().len(), 2);
        assert!(d.decode(&[0x80 | 64]).is_err(), "evicted entry");
        assert!(d.decode(&[0x80]).is_err(), "index 0");
        let mut too_big = Vec::new();
        encode_int(&mut too_big, 0x20, 5, 5000);
        assert!(d.decode(&too_big).is_err());
        // Our own encoding decodes back; never-indexed literals keep the table alone.
        let mut ours = Vec::new();
        encode_literal(&mut ours, ":path", "/grpc.health.v1.Health/Check");
        ours.extend_from_slice(&[0x10, 0x01, b'k', 0x01, b'v']);
        assert_eq!(
            d.decode(&ours).unwrap(),
            pairs(&[(":path", "/grpc.health.v1.Health/Check"), ("k", "v")])
        );
        assert_eq!(d.entries().len(), 2);
    }
}
